# shellcheck shell=bash
# flotilla test environment, QEMU VM route: helpers shared by test/env/vm/*.sh (sourced, never run).
# Builds on ../lib.sh (TESTENV_STATE/CACHE/RUN, info/die/need_pkgs, host_suite/host_mirror).
#
#   TESTENV_VM_CACHE  $TESTENV_CACHE/vm          images (keyed by a content hash), debs, ssh key
#   TESTENV_VM_ACCEL  auto                       auto|kvm|tcg (auto: kvm only with VMX/SVM in the CPU)
#   TESTENV_VM_PROJECT  the checkout above test/  shared read-only into the guest at /project
# Per-VM state: $TESTENV_STATE/vm/NAME/{disk.qcow2,pid,ssh_port,serial.log,qmp.sock,taps,...}
VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
source "$VM_DIR/../lib.sh"
VM_CACHE="${TESTENV_VM_CACHE:-$T_CACHE/vm}"
VM_STATE="$T_STATE/vm"
VM_KEY="$VM_CACHE/key/id_ed25519"
VM_PROJECT="${TESTENV_VM_PROJECT:-$(cd "$VM_DIR/../../.." && pwd)}"
VM_HOST_PKGS=(qemu-system-x86 qemu-utils xorriso debootstrap e2fsprogs openssh-client)

valid_vm() { [[ $1 =~ ^[a-z][a-z0-9-]{0,30}$ ]]; }
vm_dir() { echo "$VM_STATE/$1"; }
# Is VM $1's QEMU alive? (pid file + /proc comm)
vm_alive() { alive_file "$(vm_dir "$1")/pid" qemu-system-x86; }

SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
          -o ConnectTimeout=5 -o BatchMode=yes -o ServerAliveInterval=5 -o ServerAliveCountMax=6
          -o IdentitiesOnly=yes)
# vm_ssh NAME ARGS...: ssh as root into VM NAME (remote command as given).
vm_ssh() {
  local n=$1 port; shift
  port=$(cat "$(vm_dir "$n")/ssh_port" 2>/dev/null) || die "VM $n is not known (boot.sh $n)"
  ssh "${SSH_OPTS[@]}" -i "$VM_KEY" -p "$port" root@127.0.0.1 "$@"
}

# Accelerator: /dev/kvm on these hosts may be PVM (no VMX/SVM), which does not run stock kernels;
# so KVM is chosen only when the CPU advertises vmx or svm and /dev/kvm is usable.
vm_accel() {
  local a="${TESTENV_VM_ACCEL:-auto}"
  if [ "$a" = auto ]; then
    if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then a=kvm; else a=tcg; fi
  fi
  case $a in kvm|tcg) echo "$a" ;; *) die "TESTENV_VM_ACCEL must be auto, kvm or tcg (got $a)" ;; esac
}

# A free TCP port on 127.0.0.1 (nothing listens on it now).
free_port() {
  local p
  for p in $(shuf -i 20000-44999 -n 64); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free port on 127.0.0.1"
}
