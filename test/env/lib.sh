# shellcheck shell=bash
# flotilla test environment: helpers shared by the scripts in test/env (sourced, never run).
#
# Every location and name can be overridden from the environment:
#   TESTENV_STATE   /var/lib/flotilla-testenv    machine disks, etcd data, logs
#   TESTENV_CACHE   /var/cache/flotilla-testenv  rootfs tarball, busybox tarball (kept by down.sh)
#   TESTENV_RUN     /run/flotilla-testenv        pid files, bus sockets, *.env fragments for env.sh
#   TESTENV_SUBNET  10.214.0                     first three octets of the machines' /24
#   TESTENV_BRIDGE  fl-br0                       bridge of the machines' network
#   TESTENV_NETNS_PREFIX fl-                     netns of mK is ${prefix}mK, host veth ${prefix}mK-h
#   TESTENV_CGROUP  flotilla-testenv             cgroup subtree; machine mK lives in .../mK

TESTENV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
T_STATE="${TESTENV_STATE:-/var/lib/flotilla-testenv}"
T_CACHE="${TESTENV_CACHE:-/var/cache/flotilla-testenv}"
T_RUN="${TESTENV_RUN:-/run/flotilla-testenv}"
T_SUBNET="${TESTENV_SUBNET:-10.214.0}"
T_BRIDGE="${TESTENV_BRIDGE:-fl-br0}"
T_NSPFX="${TESTENV_NETNS_PREFIX:-fl-}"
T_CGROUP="${TESTENV_CGROUP:-flotilla-testenv}"
T_HOST_IP="$T_SUBNET.1"
T_LOG="$T_STATE/log"
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH="$SYS_PATH${PATH:+:$PATH}"

info() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] ERROR: %s\n' "$*" >&2; exit 1; }
as_root() { [ "$(id -u)" = 0 ] || die "$(basename "$0") must run as root"; }
# Under "set -e", report the command that failed instead of exiting silently.
on_error() { printf '[testenv] ERROR: %s: line %s: "%s" failed (exit %s)\n' "$(basename "$0")" "$1" "$2" "$3" >&2; }
strict() { set -eEuo pipefail; trap 'on_error "$LINENO" "$BASH_COMMAND" "$?"' ERR; }

now_ms() { date +%s%3N; }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%01ds' $((d / 1000)) $((d % 1000 / 100)); }

# Is process $1 alive and is its /proc/PID/comm equal to $2?
alive() { [ -n "${1:-}" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }
alive_file() { [ -r "$1" ] && alive "$(cat "$1" 2>/dev/null)" "$2"; }

# /run may live on disk (it does on the CI VMs): files from before the last boot are stale.
stale_run() { [ "$(cat "$T_RUN/boot_id" 2>/dev/null)" != "$(cat /proc/sys/kernel/random/boot_id)" ]; }
# lock NAME: serialise scripts that change the same part (fd 9 is held until exit).
lock() {
  mkdir -p "$T_RUN" "$T_LOG"
  exec 8>"$T_RUN/.boot.lock"; flock 8
  if stale_run; then
    find "$T_RUN" -mindepth 1 -maxdepth 1 ! -name '.*.lock' -exec rm -rf {} +
    cat /proc/sys/kernel/random/boot_id > "$T_RUN/boot_id"
  fi
  exec 8>&-
  exec 9>"$T_RUN/.$1.lock"
  flock -w "${TESTENV_LOCK_TIMEOUT:-900}" 9 || die "timed out waiting for the $1 lock ($T_RUN/.$1.lock)"
}

# pkgs_missing P...: print the packages that are not installed.
pkgs_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"
  done
}
# need_pkgs P...: apt-get install what is missing. Services are never started by postinst:
# our policy-rc.d (exit 101) is in place during the install (any other one is set aside and
# put back). "apt-get update" runs only when the install fails without it.
# shellcheck disable=SC2086
need_pkgs() {
  local missing; missing=$(pkgs_missing "$@" | xargs)
  [ -z "$missing" ] && return 0
  local prc=/usr/sbin/policy-rc.d t0 rc=0; t0=$(now_ms)
  mkdir -p "$T_LOG" "$T_RUN"
  exec 6>"$T_RUN/.apt.lock"; flock 6
  if [ -e $prc ] && ! cmp -s $prc "$T_RUN/policy-rc.d" 2>/dev/null; then mv $prc "$prc.flotilla-saved"; fi
  printf '#!/bin/sh\n# flotilla testenv: no service starts from apt\nexit 101\n' > "$T_RUN/policy-rc.d"
  install -m 755 "$T_RUN/policy-rc.d" $prc
  info "apt-get install $missing"
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io)
  if ! "${apt[@]}" install --no-install-recommends $missing >"$T_LOG/apt.log" 2>&1; then
    info "install failed with the current package lists; apt-get update and retry"
    if ! "${apt[@]}" update >>"$T_LOG/apt.log" 2>&1; then rc=1
    elif ! "${apt[@]}" install --no-install-recommends $missing >>"$T_LOG/apt.log" 2>&1; then rc=2; fi
  fi
  rm -f $prc
  if [ -e "$prc.flotilla-saved" ]; then mv "$prc.flotilla-saved" $prc; fi
  exec 6>&-
  if [ $rc != 0 ]; then tail -15 "$T_LOG/apt.log" >&2; die "apt-get $( [ $rc = 1 ] && echo update || echo "install $missing") failed (log $T_LOG/apt.log)"; fi
  info "installed $missing in $(since "$t0")"
}

# The host's Debian suite and the mirror apt already uses for it (never hard-coded).
host_suite() { [ -n "${TESTENV_SUITE:-}" ] && { echo "$TESTENV_SUITE"; return; }; ( . /etc/os-release; echo "${VERSION_CODENAME:?}" ); }
host_mirror() {
  [ -n "${TESTENV_MIRROR:-}" ] && { echo "$TESTENV_MIRROR"; return; }
  local m
  m=$(apt-get indextargets --no-release-info --format '$(REPO_URI)' "Release: $1" 'Target-Of: deb' 2>/dev/null | head -1)
  [ -n "$m" ] || die "apt has no 'deb' source for suite $1 (set TESTENV_MIRROR)"
  echo "${m%/}"
}

# ---- machines ----------------------------------------------------------------------------
valid_machine() { [[ $1 =~ ^m([1-9]|[1-9][0-9]|1[0-9][0-9]|200)$ ]]; }
m_ip() { echo "$T_SUBNET.$((10 + ${1#m}))"; }
m_ns() { echo "$T_NSPFX$1"; }
# Is netns $1 really there? (/run may be on disk: after a reboot the file stays, the netns is gone)
ns_ok() { mountpoint -q "/run/netns/$1" 2>/dev/null; }
m_disk() { echo "$T_STATE/machines/$1"; }
m_run() { echo "$T_RUN/machines/$1"; }
m_bus() { echo "$T_RUN/machines/$1/dbus/system_bus_socket"; }
# The cgroup directories machine $1 is started in: the v2 tree (where cgroup.kill lives) and,
# on a hybrid host, the name=systemd v1 tree too (nspawn reads its place from there).
m_cgroups() {
  local fs; fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null || true)
  if [ "$fs" = cgroup2fs ]; then echo "/sys/fs/cgroup/$T_CGROUP/$1"; return; fi
  [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] || die "no cgroup v2 hierarchy (need /sys/fs/cgroup or /sys/fs/cgroup/unified)"
  echo "/sys/fs/cgroup/unified/$T_CGROUP/$1"
  if [ -d /sys/fs/cgroup/systemd ]; then echo "/sys/fs/cgroup/systemd/$T_CGROUP/$1"; fi
}
# PID (host view) of the machine's systemd, if the machine runs.
m_pid1() {
  local r; r=$(m_run "$1")
  alive_file "$r/nspawn.pid" systemd-nspawn || return 1
  local p; p=$(cat "$r/pid1" 2>/dev/null) || return 1
  alive "$p" systemd && echo "$p"
}
# m_exec mK CMD...: run CMD inside the machine (all its namespaces, clean environment).
m_exec() {
  local m=$1 p; shift
  p=$(m_pid1 "$m") || die "machine $m is not running (machines.sh up $m)"
  nsenter --target "$p" --all --root --wd -- /usr/bin/env -i PATH="$SYS_PATH" HOME=/root LANG=C.UTF-8 \
    TERM="${TERM:-dumb}" "$@"
}
# Machines whose nspawn is alive, in order.
machines_running() {
  local d
  for d in $(ls -d "$T_RUN"/machines/m* 2>/dev/null | sort -V); do
    m_pid1 "$(basename "$d")" >/dev/null && basename "$d"
  done
  return 0
}
# Rewrite $T_RUN/machines.env (read by env.sh).
machines_env() {
  local ms m; ms=$(machines_running | xargs)
  {
    if [ -n "$ms" ]; then
      echo "TESTENV_MACHINES=${ms// /,}"
      echo "TESTENV_HOST_IP=$T_HOST_IP"
      for m in $ms; do
        echo "TESTENV_${m^^}_IP=$(m_ip "$m")"
        echo "TESTENV_${m^^}_BUS=unix:path=$(m_bus "$m")"
      done
    fi
  } > "$T_RUN/machines.env.tmp"
  mv "$T_RUN/machines.env.tmp" "$T_RUN/machines.env"
}

# ---- docker image --------------------------------------------------------------------------
# A root file system tar made of busybox-static, to "docker import" (no registry reachable).
busybox_tar() {
  local out="$T_CACHE/busybox-rootfs.tar" t a
  if [ -s "$out" ]; then echo "$out"; return; fi
  [ -x /bin/busybox ] || die "/bin/busybox is missing (package busybox-static)"
  t=$(mktemp -d)
  mkdir -p "$t/bin" "$t/etc" "$t/tmp" "$t/root" "$t/proc" "$t/sys" "$t/dev" "$t/var"
  chmod 1777 "$t/tmp"
  install -m 755 /bin/busybox "$t/bin/busybox"
  for a in $(/bin/busybox --list); do [ -e "$t/bin/$a" ] || ln -s busybox "$t/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$t/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$t/etc/group"
  mkdir -p "$T_CACHE"
  tar -C "$t" --numeric-owner --owner=0 --group=0 -cf "$out.part" . && mv "$out.part" "$out"
  rm -rf "$t"
  echo "$out"
}

# ---- network -------------------------------------------------------------------------------
# Partitions are drops at the RECEIVER's INPUT hook (chain FL-PART in each machine's netns and
# in the host's INPUT for packets from the bridge), so senders never get an error: packets
# just vanish, as with a cut cable. State: $T_RUN/partitions/mK holds "all" or peer names.
PART_CHAIN=FL-PART
ipt_chain() {   # ipt_chain NETNS|"" : make sure chain FL-PART exists and INPUT jumps to it, then flush it
  local ns=$1 x=()
  [ -n "$ns" ] && x=(ip netns exec "$ns")
  "${x[@]}" iptables -w -N $PART_CHAIN 2>/dev/null || true
  if [ -n "$ns" ]; then
    "${x[@]}" iptables -w -C INPUT -j $PART_CHAIN 2>/dev/null || "${x[@]}" iptables -w -I INPUT -j $PART_CHAIN
  else
    iptables -w -C INPUT -i "$T_BRIDGE" -j $PART_CHAIN 2>/dev/null || iptables -w -I INPUT -i "$T_BRIDGE" -j $PART_CHAIN
  fi
  "${x[@]}" iptables -w -F $PART_CHAIN
}
peer_ip() { case $1 in host) echo "$T_HOST_IP" ;; *) m_ip "$1" ;; esac; }
# Does machine $1's partition spec cut it from $2 (a machine or "host")?
part_cuts() {
  local f="$T_RUN/partitions/$1"
  [ -s "$f" ] || return 1
  grep -qx -e all -e "$2" "$f"
}
# Recompute every FL-PART chain from the state files.
apply_partitions() {
  local ms m o src
  exec 7>"$T_RUN/.partitions.lock"; flock 7
  ms=$(ls "$T_STATE/machines" 2>/dev/null | grep -E '^m[0-9]+$' | sort -V || true)
  for m in $ms; do
    ns_ok "$(m_ns "$m")" || continue
    ipt_chain "$(m_ns "$m")"
    if part_cuts "$m" all; then
      ip netns exec "$(m_ns "$m")" iptables -w -A $PART_CHAIN ! -i lo -j DROP
      continue
    fi
    for o in host $ms; do
      [ "$o" = "$m" ] && continue
      if part_cuts "$m" "$o" || part_cuts "$o" "$m"; then
        src=$(peer_ip "$o")
        ip netns exec "$(m_ns "$m")" iptables -w -A $PART_CHAIN -s "$src" -j DROP
      fi
    done
  done
  if ip link show "$T_BRIDGE" >/dev/null 2>&1; then
    ipt_chain ""
    for m in $ms; do
      if part_cuts "$m" host; then iptables -w -A $PART_CHAIN -s "$(m_ip "$m")" -j DROP; fi
    done
  fi
  exec 7>&-
}
