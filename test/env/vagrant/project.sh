#!/usr/bin/env bash
# A Vagrant project dir for this test instance: vagrant/Vagrantfile + user-data copied to
# $TESTENV_STATE/vagrant/project, with a config.rb naming this instance's libvirt objects
# (prefix $TESTENV_NETNS_PREFIX, pool, networks 10.2N.56.0/24 and 10.2N.121.0/24, both isolated).
#
#   project.sh [NUM_INSTANCES]        prints the project dir
# Then: cd DIR && FLOTILLA_VAGRANT_EMULATOR=$(project.sh --emulator) vagrant up
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
if [ "${1:-}" = --emulator ]; then echo "$VM_CACHE/bin/qemu-system-x86_64-tcg"; exit 0; fi
N=${1:-3}
[[ $N =~ ^[0-9]+$ ]] || die "NUM_INSTANCES must be a number (got '$N')"
P="$VG_STATE/project"
mkdir -p "$P"
install -m 644 "$VM_PROJECT/vagrant/Vagrantfile" "$VM_PROJECT/vagrant/user-data" "$P/"
DEB=$(ls -t "$VM_PROJECT"/dist-pkg/flotilla_*_amd64.deb 2>/dev/null | head -1 || true)
[ -n "$DEB" ] || die "no dist-pkg/flotilla_*_amd64.deb: run npm run package"
cat > "$P/config.rb.tmp" <<RB
# written by test/env/vagrant/project.sh for test instance ${VG_PREFIX}
\$num_instances = $N
\$libvirt_prefix = "${VG_PREFIX}"
\$libvirt_storage_pool = "${VG_POOL}"
\$private_subnet = "${VG_PRIV_NET}"
\$libvirt_management_subnet = "${VG_MGMT_NET}"
\$box = "${VG_BOX}"
\$flotilla_package = "${DEB}"
\$flotilla_cli = ["${VM_PROJECT}/bin/flotilla"]
\$vm_memory = ${TESTENV_VAGRANT_MEM:-1024}
\$enable_serial_logging = true
\$serial_log_dir = "${P}/log"
RB
mv "$P/config.rb.tmp" "$P/config.rb"
echo "$P"
