#!/usr/bin/env bash
# Real systemd machines for flotilla's tests: systemd-nspawn containers that boot Debian's
# systemd as PID 1, each with its own network namespace, disk, machine-id and D-Bus.
#
#   machines.sh up N               make sure m1..mN run (boots the ones that do not)
#   machines.sh up mK...           make sure these run ("up mK" after "down mK" = reboot,
#                                  same disk, machine-id and address)
#   machines.sh down               remove every machine, its disk, netns, the bridge, rules
#   machines.sh down mK...         clean poweroff of these machines (disk kept)
#   machines.sh down --kill mK...  power cut: SIGKILL to every process of the machine at once
#   machines.sh exec mK CMD...     run CMD inside mK (clean env, root; stdio + exit code pass through)
#   machines.sh status             one line per machine
#
# Machine mK: hostname mK, address $TESTENV_SUBNET.(10+K) on bridge fl-br0 (host .1), netns
# fl-mK, no default route; system bus on the host at /run/flotilla-testenv/machines/mK/dbus/
# system_bus_socket; host node -> /usr/local/bin/node; project -> /project (read-only);
# host docker socket -> /run/docker.sock.
# Settings: TESTENV_PROJECT_DIR, TESTENV_MACHINE_PACKAGES (extra Debian packages, comma list),
# TESTENV_BOOT_TIMEOUT (s, default 90), TESTENV_MIRROR, TESTENV_SUITE, plus those of lib.sh.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict

usage() { die "usage: machines.sh up N|mK... | down [--kill] [mK...] | exec mK CMD... | status"; }

ROOTFS_PREP=3            # bump when prepare_rootfs changes (invalidates the cached rootfs)
PKGS="systemd,systemd-sysv,dbus,iproute2,procps,iputils-ping,curl,nftables${TESTENV_MACHINE_PACKAGES:+,$TESTENV_MACHINE_PACKAGES}"

rootfs_vars() {
  SUITE=$(host_suite)
  KEY=$(printf '%s|%s|%s' "$SUITE" "$PKGS" "$ROOTFS_PREP" | sha256sum | cut -c1-10)
  TARBALL="$T_CACHE/rootfs-$SUITE-$KEY.tar.zst"
  BASE="$T_STATE/rootfs-$KEY"
}

# Adjust a fresh debootstrap tree so that it boots well as a container.
prepare_rootfs() {
  local r=$1 u
  rm -f "$r/etc/dpkg/dpkg.cfg.d/00flotilla-unsafe-io"
  : > "$r/etc/machine-id"                     # every machine gets its own (see start_one)
  rm -f "$r/var/lib/dbus/machine-id"; ln -s /etc/machine-id "$r/var/lib/dbus/machine-id"
  rm -f "$r/etc/hostname"
  printf '# flotilla test machines: no DNS; names are in /etc/hosts\n' > "$r/etc/resolv.conf"
  for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
           e2scrub_reap.service fstrim.timer console-getty.service getty@tty1.service \
           systemd-networkd-wait-online.service; do
    ln -sf /dev/null "$r/etc/systemd/system/$u"
  done
  # host Docker engine: its socket dir is bound at /run/flotilla-docker
  printf 'L+ /run/docker.sock - - - - /run/flotilla-docker/docker.sock\n' > "$r/etc/tmpfiles.d/flotilla-docker.conf"
  printf 'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n' > "$r/etc/environment"
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*_* "$r"/var/log/*.log
}

ensure_rootfs() {
  [ -e "$BASE/.ready" ] && return 0
  mkdir -p "$T_CACHE" "$T_STATE"
  rm -rf "$BASE.part"; mkdir -p "$BASE.part/etc/dpkg/dpkg.cfg.d"
  # dpkg inside debootstrap without fsync (much faster here); removed again in prepare_rootfs
  echo force-unsafe-io > "$BASE.part/etc/dpkg/dpkg.cfg.d/00flotilla-unsafe-io"
  local t0; t0=$(now_ms)
  if [ -s "$TARBALL" ]; then
    info "unpacking cached rootfs $TARBALL"
    tar --numeric-owner --xattrs --xattrs-include='*' -I zstd -C "$BASE.part" -xf "$TARBALL" \
      || die "cannot unpack $TARBALL (delete it to rebuild)"
  else
    local mirror; mirror=$(host_mirror "$SUITE")
    info "debootstrap $SUITE from $mirror (first run only, ~45 s; log $T_LOG/debootstrap.log)"
    if ! debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$BASE.part" "$mirror" >"$T_LOG/debootstrap.log" 2>&1; then
      tail -15 "$T_LOG/debootstrap.log" >&2
      die "debootstrap of $SUITE from $mirror failed (log $T_LOG/debootstrap.log)"
    fi
    prepare_rootfs "$BASE.part"
    tar --numeric-owner --xattrs --xattrs-include='*' -I 'zstd -T0 -3' -C "$BASE.part" -cf "$TARBALL.part" . \
      && mv "$TARBALL.part" "$TARBALL"
    info "rootfs cached as $TARBALL ($(du -h "$TARBALL" | cut -f1))"
  fi
  touch "$BASE.part/.ready"
  mv "$BASE.part" "$BASE"
  info "rootfs ready in $(since "$t0")"
}

ensure_bridge() {
  if ! ip link show "$T_BRIDGE" >/dev/null 2>&1; then
    ip link add "$T_BRIDGE" type bridge
  fi
  echo 1 > "/proc/sys/net/ipv6/conf/$T_BRIDGE/disable_ipv6" 2>/dev/null || true
  ip addr replace "$T_HOST_IP/24" dev "$T_BRIDGE"
  ip link set "$T_BRIDGE" up
  # Nothing from the machines' network is ever routed elsewhere (and they have no default route).
  local d
  for d in "-i $T_BRIDGE ! -o $T_BRIDGE" "-o $T_BRIDGE ! -i $T_BRIDGE"; do
    # shellcheck disable=SC2086
    iptables -w -C FORWARD $d -j DROP 2>/dev/null || iptables -w -I FORWARD $d -j DROP
  done
}

ensure_netns() {   # netns fl-mK with eth0 (IPv4 only) on the bridge
  local m=$1 ns hv; ns=$(m_ns "$1"); hv="$(m_ns "$1")-h"
  if ! ns_ok "$ns"; then
    ip netns del "$ns" 2>/dev/null || rm -f "/run/netns/$ns"
    ip netns add "$ns"
  fi
  if ! ip link show "$hv" >/dev/null 2>&1; then
    ip -n "$ns" link del eth0 2>/dev/null || true
    ip link add "$hv" type veth peer name eth0 netns "$ns"
  fi
  echo 1 > "/proc/sys/net/ipv6/conf/$hv/disable_ipv6" 2>/dev/null || true
  ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6' 2>/dev/null || true
  # /proc/sys is read-only inside the machine (nspawn), so set what flotilla's kernel proxy path
  # needs for a loopback listener with endpoints on other machines here, as an operator would in
  # /etc/sysctl.d (README "Service discovery"); the agent then adds the martian guard itself.
  ip netns exec "$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet'
  ip link set "$hv" master "$T_BRIDGE" up
  ip -n "$ns" addr replace "$(m_ip "$m")/24" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
}

write_hosts() {   # /etc/hosts of the machine mounted at $1
  local m
  {
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
    printf '%s\thost\n' "$T_HOST_IP"
    for m in $(ls "$T_STATE/machines" 2>/dev/null | grep -E '^m[0-9]+$' | sort -V); do
      printf '%s\t%s\n' "$(m_ip "$m")" "$m"
    done
  } > "$1/etc/hosts.flotilla"
  mv "$1/etc/hosts.flotilla" "$1/etc/hosts"
}

project_dir() {
  if [ -n "${TESTENV_PROJECT_DIR:-}" ]; then readlink -f "$TESTENV_PROJECT_DIR"; return; fi
  git -c safe.directory='*' -C "$TESTENV_DIR" rev-parse --show-toplevel 2>/dev/null || readlink -f "$TESTENV_DIR/../.."
}

# Kill what is left of machine $1, unmount its disk, remove its cgroups and pid files.
cleanup_one() {
  local m=$1 d r c; d=$(m_disk "$m"); r=$(m_run "$m")
  for c in $(m_cgroups "$m"); do
    [ -e "$c/cgroup.kill" ] || continue
    echo 1 > "$c/cgroup.kill"
    for _ in $(seq 200); do grep -q '^populated 0' "$c/cgroup.events" && break; sleep 0.025; done
  done
  if alive_file "$r/nspawn.pid" systemd-nspawn; then kill -KILL "$(cat "$r/nspawn.pid")" 2>/dev/null || true; fi
  if mountpoint -q "$d/root"; then umount "$d/root" 2>/dev/null || umount -l "$d/root"; fi
  for c in $(m_cgroups "$m"); do
    if [ -d "$c" ]; then find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  rm -f "$r/nspawn.pid" "$r/pid1" "$r/dbus/system_bus_socket"
  rm -rf "/run/systemd/nspawn/propagate/$m"
}

start_one() {
  local m=$1 d r c node project cgs=() binds=()
  d=$(m_disk "$m"); r=$(m_run "$m")
  cleanup_one "$m"
  if [ -e "$d/rootfs-key" ] && [ "$(cat "$d/rootfs-key")" != "$KEY" ]; then
    info "$m: the rootfs changed; resetting its disk"; rm -rf "$d"
  fi
  mkdir -p "$d/upper" "$d/work" "$d/root" "$r/dbus" "$T_RUN/docker"
  echo "$KEY" > "$d/rootfs-key"
  mount -t overlay "fl-$m" -o "lowerdir=$BASE,upperdir=$d/upper,workdir=$d/work" "$d/root"
  if [ ! -s "$d/root/etc/machine-id" ]; then
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$d/root/etc/machine-id"; echo >> "$d/root/etc/machine-id"
  fi
  echo "$m" > "$d/root/etc/hostname"
  write_hosts "$d/root"
  node=$(command -v node || true)
  if [ -n "$node" ]; then binds+=(--bind-ro="$(readlink -f "$node"):/usr/local/bin/node"); fi
  project=$(project_dir)
  if [ -n "$project" ] && [ -d "$project" ]; then binds+=(--bind-ro="$project:/project"); fi
  # Extra host directories, read-only at the same path inside (e.g. TESTENV_BIND_RO=/work so that
  # git worktrees under /work can run their own build in the machines: TESTENV_MACHINE_PROJECT).
  # Remembered for later boots (a machine rebooted by a test keeps its binds).
  if [ -n "${TESTENV_BIND_RO+x}" ]; then echo "$TESTENV_BIND_RO" > "$T_RUN/bind-ro"; fi
  local saved_ro=''
  if [ -f "$T_RUN/bind-ro" ]; then saved_ro=$(cat "$T_RUN/bind-ro"); fi
  for b in ${TESTENV_BIND_RO-$saved_ro}; do
    if [ -d "$b" ]; then binds+=(--bind-ro="$(readlink -f "$b")"); fi
  done
  for c in $(m_cgroups "$m"); do mkdir -p "$c"; cgs+=("$c"); done
  echo "=== boot $(date -Is) ===" >> "$T_LOG/$m.console.log"
  # The subshell moves itself into the machine's cgroups, then becomes nspawn (setsid: own
  # session, so nothing of the caller's terminal or job reaches it).
  (
    for c in "${cgs[@]}"; do echo "$BASHPID" > "$c/cgroup.procs"; done
    export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1
    exec setsid systemd-nspawn --quiet --boot --directory="$d/root" --machine="$m" \
      --register=no --keep-unit --link-journal=no --console=read-only \
      --resolv-conf=off --timezone=off --capability=all --system-call-filter='@keyring bpf' \
      --network-namespace-path="/run/netns/$(m_ns "$m")" \
      --bind="$r/dbus:/run/dbus" --bind="$T_RUN/docker:/run/flotilla-docker" "${binds[@]}"
  ) </dev/null >>"$T_LOG/$m.console.log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
  echo $! > "$r/nspawn.pid"
}

# Wait until every machine in "$@" has systemd as PID 1, reports running/degraded over the
# bus the host sees, and record its PID 1.
wait_booted() {
  local deadline=$(( $(now_ms) + ${TESTENV_BOOT_TIMEOUT:-90} * 1000 )) m r pid kid st pending=("$@") next
  while [ ${#pending[@]} -gt 0 ]; do
    next=()
    for m in "${pending[@]}"; do
      r=$(m_run "$m"); pid=$(cat "$r/nspawn.pid")
      # (until the launcher subshell has exec'ed nspawn its name is still "bash")
      if ! grep -q '^State:[[:space:]]*[RSDI]' "/proc/$pid/status" 2>/dev/null; then
        tail -15 "$T_LOG/$m.console.log" >&2; die "$m: systemd-nspawn exited during boot (log $T_LOG/$m.console.log)"
      fi
      if [ ! -s "$r/pid1" ]; then
        kid=$(cat /proc/"$pid"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -m1 . || true)
        if alive "$kid" systemd; then echo "$kid" > "$r/pid1"; else next+=("$m"); continue; fi
      fi
      st=$(busctl --address="unix:path=$(m_bus "$m")" --timeout=2 get-property org.freedesktop.systemd1 \
             /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState 2>/dev/null || true)
      case $st in
        *'"running"') ;;
        *'"degraded"') info "$m: degraded; failed units: $(m_exec "$m" systemctl --failed --plain --no-legend | awk '{print $1}' | xargs)" ;;
        *) next+=("$m") ;;
      esac
    done
    pending=("${next[@]+"${next[@]}"}")
    [ ${#pending[@]} -eq 0 ] && break
    if [ "$(now_ms)" -gt "$deadline" ]; then
      for m in "${pending[@]}"; do tail -10 "$T_LOG/$m.console.log" >&2; done
      die "not booted after ${TESTENV_BOOT_TIMEOUT:-90} s: ${pending[*]} (logs $T_LOG/mK.console.log)"
    fi
    sleep 0.1
  done
}

cmd_up() {
  [ $# -ge 1 ] || usage
  if [ $# = 1 ] && [[ $1 =~ ^[0-9]+$ ]]; then
    [ "$1" -le 200 ] || die "at most 200 machines"
    [ "$1" -gt 0 ] || { info "0 machines requested"; return 0; }
    set -- $(seq -f 'm%g' 1 "$1")
  fi
  local m; for m in "$@"; do valid_machine "$m" || die "bad machine name '$m' (m1..m200)"; done
  lock machines
  mkdir -p "$T_STATE/machines" "$T_RUN/machines" "$T_RUN/partitions"
  need_pkgs systemd-container debootstrap iproute2 iptables zstd
  rootfs_vars
  ensure_rootfs
  ensure_bridge
  local t0 todo=(); t0=$(now_ms)
  for m in "$@"; do
    mkdir -p "$(m_disk "$m")"
    ensure_netns "$m"
    m_pid1 "$m" >/dev/null || todo+=("$m")
  done
  apply_partitions
  for m in "${todo[@]+"${todo[@]}"}"; do info "booting $m ($(m_ip "$m"))"; start_one "$m"; done
  if [ ${#todo[@]} -gt 0 ]; then wait_booted "${todo[@]}"; fi
  for m in $(machines_running); do write_hosts "$(m_disk "$m")/root"; done   # new peers
  machines_env
  if [ ${#todo[@]} -gt 0 ]; then
    info "booted ${todo[*]} in $(since "$t0"); running: $(machines_running | xargs)"
  else
    info "already running: $*"
  fi
}

stop_some() {   # stop_some 0|1 mK...   (1 = power cut)
  local kill=$1 m pid pids=() r; shift
  for m in "$@"; do
    r=$(m_run "$m")
    if alive_file "$r/nspawn.pid" systemd-nspawn; then
      if [ "$kill" = 1 ]; then info "$m: power cut"
      else info "$m: poweroff"; pid=$(cat "$r/nspawn.pid"); kill -TERM "$pid"; pids+=("$m:$pid"); fi
    fi
  done
  local deadline=$(( $(now_ms) + 30000 )) e
  for e in "${pids[@]+"${pids[@]}"}"; do
    while alive "${e#*:}" systemd-nspawn && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
    alive "${e#*:}" systemd-nspawn && info "${e%%:*}: no clean shutdown within 30 s; cutting power"
  done
  # The machine vanishes from the network first, like a machine losing power: no FIN or RST for
  # its connections and no answer to new ones (the netns outlives the machine; boot re-links it).
  for m in "$@"; do ip link set "$(m_ns "$m")-h" down 2>/dev/null || true; done
  for m in "$@"; do cleanup_one "$m"; done
}

cmd_down() {
  local kill=0
  if [ "${1:-}" = --kill ]; then kill=1; shift; fi
  lock machines
  if [ $# -gt 0 ]; then
    local m; for m in "$@"; do
      valid_machine "$m" || die "bad machine name '$m'"
      [ -d "$(m_disk "$m")" ] || die "unknown machine '$m'"
    done
    local t0; t0=$(now_ms)
    stop_some "$kill" "$@"
    machines_env
    info "stopped $* in $(since "$t0") (disk kept; 'machines.sh up $*' boots again)"
    return 0
  fi
  local all; all=$( { ls "$T_RUN/machines" "$T_STATE/machines" 2>/dev/null || true; } | grep -E '^m[0-9]+$' | sort -uV | xargs)
  if [ -n "$all" ]; then
    # shellcheck disable=SC2086
    stop_some 1 $all
  fi
  for m in $all; do
    ip netns del "$(m_ns "$m")" 2>/dev/null || true
    ip link del "$(m_ns "$m")-h" 2>/dev/null || true
  done
  if command -v iptables >/dev/null; then
    iptables -w -D INPUT -i "$T_BRIDGE" -j $PART_CHAIN 2>/dev/null || true
    iptables -w -F $PART_CHAIN 2>/dev/null || true
    iptables -w -X $PART_CHAIN 2>/dev/null || true
    iptables -w -D FORWARD -i "$T_BRIDGE" ! -o "$T_BRIDGE" -j DROP 2>/dev/null || true
    iptables -w -D FORWARD -o "$T_BRIDGE" ! -i "$T_BRIDGE" -j DROP 2>/dev/null || true
  fi
  ip link del "$T_BRIDGE" 2>/dev/null || true
  local c; for c in $(m_cgroups m0); do rmdir "$(dirname "$c")" 2>/dev/null || true; done
  rm -rf "$T_STATE/machines" "$T_RUN/machines" "$T_RUN/partitions" "$T_RUN/machines.env" "$T_RUN/etcd-machines.env"
  info "machines removed (${all:-none}); rootfs cache kept"
}

cmd_exec() {
  [ $# -ge 1 ] || usage
  local m=$1; shift
  valid_machine "$m" || die "bad machine name '$m'"
  [ $# -gt 0 ] || set -- /bin/bash -l
  local p c; p=$(m_pid1 "$m") || die "machine $m is not running (machines.sh up $m)"
  # Join the machine's cgroup, so a power cut (cgroup.kill) also ends commands run this way.
  c=$(m_cgroups "$m"); c="${c%%$'\n'*}/exec"
  { mkdir -p "$c" && echo $$ > "$c/cgroup.procs"; } 2>/dev/null || true
  trap - ERR
  exec nsenter --target "$p" --all --root --wd -- /usr/bin/env -i PATH="$SYS_PATH" HOME=/root LANG=C.UTF-8 \
    TERM="${TERM:-dumb}" "$@"
}

cmd_status() {
  local m st
  for m in $( { ls "$T_STATE/machines" 2>/dev/null || true; } | { grep -E '^m[0-9]+$' || true; } | sort -V); do
    if m_pid1 "$m" >/dev/null; then
      st=$(m_exec "$m" systemctl is-system-running 2>/dev/null || true)
    else st=stopped; fi
    printf '%s\t%s\t%s\t%s\n' "$m" "$(m_ip "$m")" "${st:-unknown}" "$(cat "$T_RUN/partitions/$m" 2>/dev/null | xargs | sed 's/^./partitioned from: &/')"
  done
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
  up) as_root; cmd_up "$@" ;;
  down) as_root; cmd_down "$@" ;;
  exec) as_root; cmd_exec "$@" ;;
  status) as_root; cmd_status ;;
  *) usage ;;
esac
