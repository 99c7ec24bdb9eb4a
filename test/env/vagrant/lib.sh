# shellcheck shell=bash
# flotilla test environment, Vagrant route: helpers shared by test/env/vagrant/*.sh (sourced, never run).
# Builds on ../vm/lib.sh (the QEMU route's image and key) and ../lib.sh (TESTENV_* instance settings).
#
#   TESTENV_VAGRANT_BOX    flotilla/debian-test          the box name `vagrant box add` registers
#   TESTENV_VAGRANT_PREFIX from TESTENV_NETNS_PREFIX, "fl-"   prefix of every libvirt object we create
#   TESTENV_SUBNET         10.2N.0 → private net 10.2N.56.0/24, management net 10.2N.121.0/24
# State: $TESTENV_STATE/vagrant/{pool/,project/,home/} ; libvirtd we started: $TESTENV_RUN/vagrant/
VG_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../vm/lib.sh
source "$VG_DIR/../vm/lib.sh"
VG_BOX="${TESTENV_VAGRANT_BOX:-flotilla/debian-test}"
VG_PREFIX="${TESTENV_VAGRANT_PREFIX:-${TESTENV_NETNS_PREFIX:-fl-}}"
VG_STATE="$T_STATE/vagrant"
VG_RUN="$T_RUN/vagrant"
VG_POOL="${VG_PREFIX}vagrant"
VG_BOXDIR="$VM_CACHE/vagrant-box"
_net="${TESTENV_SUBNET:-10.250.0}"; _net="${_net%.*}"          # 10.232.0 → 10.232
VG_PRIV_NET="$_net.56"; VG_MGMT_NET="$_net.121"
VG_HOST_PKGS=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients dnsmasq-base qemu-utils e2fsprogs)
virsh_() { virsh -c qemu:///system "$@"; }
