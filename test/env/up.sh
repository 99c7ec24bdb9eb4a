#!/usr/bin/env bash
# CI entry point: bring the whole test environment up, then print it (env.sh format).
#
#   up.sh [N]     Docker engine, loopback etcd cluster ($TESTENV_ETCD_MEMBERS members, default 3),
#                 N machines (default 3; 0 = none) and, unless TESTENV_MACHINES_ETCD=0, one etcd
#                 member inside each machine.
# Idempotent: parts already up are left alone, dead ones are restarted. Progress goes to stderr,
# the environment to stdout:  eval "$(sudo test/env/up.sh 3)"
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root
N=${1:-3}
[[ $N =~ ^[0-9]+$ ]] || die "usage: up.sh [N]"
t0=$(now_ms)
lock up
D=$TESTENV_DIR

# Host packages of the machines first (the rootfs build needs debootstrap); then the slow
# rootfs build runs in the background while Docker and etcd are installed and started.
mpid=""
# Shells for the CLI's completion tests (bash is there; zsh is not on a fresh Debian).
need_pkgs zsh gdisk grub-common
# nft for the proxy's kernel data path (its test runs in a private network namespace).
need_pkgs nftables
# QEMU for the VM route (test/env/vm); its image is built lazily by the VM tests (image.sh).
need_pkgs qemu-system-x86 qemu-utils xorriso
if [ "$N" -gt 0 ]; then
  need_pkgs systemd-container debootstrap iproute2 iptables zstd
  "$D/machines.sh" up "$N" > "$T_LOG/up-machines.log" 2>&1 &
  mpid=$!
fi
"$D/docker.sh" up
"$D/etcd.sh" up "${TESTENV_ETCD_MEMBERS:-3}"
if [ -n "$mpid" ]; then
  mrc=0; wait "$mpid" || mrc=$?
  cat "$T_LOG/up-machines.log" >&2
  [ $mrc = 0 ] || die "machines.sh up $N failed (exit $mrc)"
  if [ "${TESTENV_MACHINES_ETCD:-1}" != 0 ]; then "$D/etcd.sh" up --machines "$N"; fi
fi
info "test environment up in $(since "$t0")"
"$D/env.sh"
