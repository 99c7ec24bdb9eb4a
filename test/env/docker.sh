#!/usr/bin/env bash
# A real Docker engine for flotilla's tests (Debian's docker.io, started by hand: no systemd here).
#
#   docker.sh up            install docker.io busybox-static iptables if missing; start dockerd
#                           unless an engine already answers (that one is left alone); import a
#                           local busybox:latest (no registry is reachable); smoke-run a container
#   docker.sh down [--purge]   remove all containers, stop the dockerd this script started
#                           (images kept; --purge deletes /var/lib/docker too)
#   docker.sh status
#   docker.sh up --machines [mK...]     an own engine INSIDE each machine (default: all running):
#                           see "Engines inside the machines" below
#   docker.sh down --machines [mK...]   stop and disable them; the machines use the host engine again
#   docker.sh status --machines
#
# Engine flags: --bridge=none --iptables=false --ip6tables=false --ip-forward=false, so it never touches the host's
# firewall or routing; containers get network "none" or "--network host". Storage driver: the
# first of $TESTENV_DOCKER_STORAGE ("overlay2 fuse-overlayfs vfs") that works.
# Sockets: $TESTENV_DOCKER_SOCKET (/var/run/docker.sock) and /run/flotilla-testenv/docker/
# docker.sock, the directory the machines see as /run/flotilla-docker (their /run/docker.sock).
#
# Engines inside the machines (opt-in, `up --machines`): so that containers live in the machine's
# network namespace and cgroup, and die with it on a power cut. Nothing is added to the machines'
# rootfs: the host's docker.io binaries (dockerd, containerd, containerd-shim-runc-v2, runc,
# docker-init, docker-proxy) and the docker CLI are copied once into $T_RUN/docker/bin, which every
# machine sees as /run/flotilla-docker/bin. In each machine, the enabled unit flotilla-dockerd.service
# runs that dockerd on /run/docker.sock (replacing the link to the host engine; a tmpfiles override
# keeps the link from coming back at boot) with --bridge=none --iptables=false --ip-forward=false, the
# systemd cgroup driver (cgroup v2 inside) and storage overlay2 with its data root on a host
# directory, $T_RUN/docker/machines/mK (overlay2 does not work on the machine's overlayfs root).
# `docker` in the machine (/usr/local/bin/docker, /usr/bin/docker) is that CLI, and busybox:latest
# (+ flotilla-testenv/busybox:latest) is imported into each engine. The unit is on the machine's
# disk, so it comes back after a reboot or power cut (containers do not: restart policy "no").
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root

SOCK=${TESTENV_DOCKER_SOCKET:-/var/run/docker.sock}
SHARED="$T_RUN/docker/docker.sock"
PIDF="$T_RUN/dockerd.pid"
dk() { docker -H "unix://$SOCK" "$@"; }
answers() { curl -fsS --max-time 2 --unix-socket "$1" http://docker/_ping >/dev/null 2>&1; }

# An engine we did not start: give the machines a path to its socket (hard link, else bind mount).
share_foreign_socket() {
  answers "$SHARED" && return 0
  if mountpoint -q "$SHARED" 2>/dev/null; then umount "$SHARED" || true; fi
  rm -f "$SHARED"
  ln "$(readlink -f "$SOCK")" "$SHARED" 2>/dev/null && return 0
  : > "$SHARED" && mount --bind "$(readlink -f "$SOCK")" "$SHARED" && return 0
  info "warning: cannot expose $SOCK at $SHARED; machines will not see the engine"
}

start_dockerd() {
  local drv pid
  for drv in ${TESTENV_DOCKER_STORAGE:-overlay2 fuse-overlayfs vfs}; do
    if [ "$drv" = fuse-overlayfs ]; then need_pkgs fuse-overlayfs || continue; fi
    rm -f "$SHARED"
    info "starting dockerd (storage driver $drv; log $T_LOG/dockerd.log)"
    echo "=== $(date -Is) dockerd --storage-driver=$drv ===" >> "$T_LOG/dockerd.log"
    setsid dockerd --storage-driver="$drv" --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
      --log-level=warn -H "unix://$SOCK" -H "unix://$SHARED" \
      </dev/null >>"$T_LOG/dockerd.log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
    pid=$!; echo "$pid" > "$PIDF"
    for _ in $(seq 300); do
      answers "$SOCK" && break
      grep -q '^State:[[:space:]]*[RSDI]' "/proc/$pid/status" 2>/dev/null || break
      sleep 0.1
    done
    if answers "$SOCK" && [ "$(dk info --format '{{.Driver}}' 2>/dev/null)" = "$drv" ]; then return 0; fi
    info "dockerd does not work with $drv:"; tail -4 "$T_LOG/dockerd.log" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" dockerd || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  die "dockerd failed with every storage driver (${TESTENV_DOCKER_STORAGE:-overlay2 fuse-overlayfs vfs}); log $T_LOG/dockerd.log"
}

cmd_up() {
  lock docker
  mkdir -p "$T_RUN/docker"
  local t0; t0=$(now_ms)
  need_pkgs docker.io busybox-static iptables curl
  if answers "$SOCK"; then
    if alive_file "$PIDF" dockerd; then info "docker engine (ours) already answers on $SOCK"
    else info "a docker engine already answers on $SOCK (not started by docker.sh; left alone)"; share_foreign_socket; fi
  else
    start_dockerd
  fi
  if ! dk image inspect busybox:latest >/dev/null 2>&1; then
    info "importing busybox:latest from busybox-static"
    dk import -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["sh"]' - busybox:latest < "$(busybox_tar)" >/dev/null \
      || die "docker import of busybox failed"
  fi
  dk image inspect flotilla-testenv/busybox:latest >/dev/null 2>&1 || dk tag busybox:latest flotilla-testenv/busybox:latest
  local out; out=$(dk run --rm --network none busybox:latest sh -c 'echo smoke-ok' 2>&1) || die "smoke container failed: $out"
  [ "$out" = smoke-ok ] || die "smoke container printed '$out'"
  printf 'TESTENV_DOCKER_SOCKET=%s\nDOCKER_HOST=unix://%s\n' "$SOCK" "$SOCK" > "$T_RUN/docker.env"
  info "docker $(dk version --format '{{.Server.Version}}') up in $(since "$t0") (storage $(dk info --format '{{.Driver}}')); socket $SOCK; image busybox:latest"
}

cmd_down() {
  lock docker
  rm -f "$T_RUN/docker.env"
  if ! alive_file "$PIDF" dockerd; then
    if mountpoint -q "$SHARED" 2>/dev/null; then umount "$SHARED" || true; fi
    rm -f "$PIDF" "$SHARED"
    info "no dockerd started by docker.sh is running"
  else
    local pid ids; pid=$(cat "$PIDF")
    ids=$(dk ps -aq 2>/dev/null | xargs || true)
    if [ -n "$ids" ]; then
      info "removing containers: $ids"
      # shellcheck disable=SC2086
      dk rm -f $ids >/dev/null 2>&1 || true
    fi
    info "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 300); do alive "$pid" dockerd || break; sleep 0.1; done
    if alive "$pid" dockerd; then info "dockerd still running after 30 s: SIGKILL"; kill -KILL "$pid"; sleep 0.5; fi
    rm -f "$PIDF" "$SHARED"
  fi
  local m
  for m in /run/docker/netns/default /var/lib/docker; do
    if mountpoint -q "$m" 2>/dev/null; then umount "$m" 2>/dev/null || true; fi
  done
  if [ "${1:-}" = --purge ]; then info "deleting /var/lib/docker"; rm -rf /var/lib/docker; fi
  info "docker down"
}

cmd_status() {
  if answers "$SOCK"; then
    echo "engine answers on $SOCK ($(dk version --format '{{.Server.Version}}'), $(dk ps -q | wc -l) running containers)"
    if alive_file "$PIDF" dockerd; then echo "started by docker.sh (pid $(cat "$PIDF"))"; fi
  else
    echo "no engine on $SOCK"; exit 1
  fi
}

# ---- engines inside the machines --------------------------------------------------------------
MBIN="$T_RUN/docker/bin"
MUNIT=flotilla-dockerd.service
# host binary -> name inside /run/flotilla-docker/bin
m_binaries() {
  local b p
  for b in dockerd containerd containerd-shim-runc-v2 runc docker-init docker-proxy docker; do
    p=$(command -v "$b" 2>/dev/null) || die "$b not found on the host (package docker.io)"
    printf '%s %s\n' "$(readlink -f "$p")" "$b"
  done
}

stage_binaries() {
  mkdir -p "$MBIN"
  local src name
  while read -r src name; do
    # a copy, not a link: a machine (root inside) must not be able to change the host's binaries
    if ! cmp -s "$src" "$MBIN/$name"; then
      cp "$src" "$MBIN/.$name.part" && chmod 0555 "$MBIN/.$name.part" && mv -f "$MBIN/.$name.part" "$MBIN/$name"
    fi
  done < <(m_binaries)
  cp "$(busybox_tar)" "$T_RUN/docker/busybox.tar.part" && mv -f "$T_RUN/docker/busybox.tar.part" "$T_RUN/docker/busybox.tar"
}

machine_unit() {
  cat <<'UNIT'
# Docker engine of this test machine (flotilla test/env/docker.sh up --machines).
[Unit]
Description=Docker engine of this test machine (flotilla test env)
After=network.target systemd-tmpfiles-setup.service

[Service]
Type=notify
Environment=PATH=/run/flotilla-docker/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStartPre=/bin/mkdir -p /run/flotilla-docker/machines/%H/data
ExecStartPre=-/bin/rm -f /run/docker.sock
ExecStart=/run/flotilla-docker/bin/dockerd --host=unix:///run/docker.sock --data-root=/run/flotilla-docker/machines/%H/data --exec-root=/run/flotilla-dockerd --pidfile=/run/flotilla-dockerd.pid --storage-driver=overlay2 --exec-opt=native.cgroupdriver=systemd --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --log-level=warn
ExecReload=/bin/kill -s HUP $MAINPID
KillMode=process
Delegate=yes
TasksMax=infinity
LimitNOFILE=1048576
TimeoutStartSec=60
TimeoutStopSec=30
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
UNIT
}

machine_answers() { m_exec "$1" curl -fsS --max-time 2 --unix-socket /run/docker.sock http://docker/_ping >/dev/null 2>&1; }

machine_up() {
  local m=$1 t0 i; t0=$(now_ms)
  machine_unit | m_exec "$m" sh -c "cat > /etc/systemd/system/$MUNIT.tmp && mv /etc/systemd/system/$MUNIT.tmp /etc/systemd/system/$MUNIT"
  # The machine's /run/docker.sock is the machine's own engine from now on (also after a reboot).
  m_exec "$m" sh -c 'printf "# flotilla test env: this machine runs its own Docker engine (flotilla-dockerd.service)\n" > /etc/tmpfiles.d/flotilla-docker.conf'
  m_exec "$m" ln -sfn /run/flotilla-docker/bin/docker /usr/local/bin/docker
  m_exec "$m" ln -sfn /run/flotilla-docker/bin/docker /usr/bin/docker
  m_exec "$m" systemctl daemon-reload
  if ! m_exec "$m" systemctl enable --now "$MUNIT" >/dev/null 2>&1; then
    m_exec "$m" journalctl -u "$MUNIT" --no-pager -n 20 >&2 || true
    die "$m: $MUNIT did not start"
  fi
  for i in $(seq 100); do machine_answers "$m" && break; sleep 0.1; done
  machine_answers "$m" || die "$m: its docker engine does not answer on /run/docker.sock"
  if ! m_exec "$m" docker image inspect busybox:latest >/dev/null 2>&1; then
    m_exec "$m" sh -c "docker import -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD [\"sh\"]' - busybox:latest < /run/flotilla-docker/busybox.tar >/dev/null" \
      || die "$m: docker import of busybox failed"
  fi
  m_exec "$m" docker image inspect flotilla-testenv/busybox:latest >/dev/null 2>&1 || m_exec "$m" docker tag busybox:latest flotilla-testenv/busybox:latest
  local out; out=$(m_exec "$m" docker run --rm --network none busybox:latest sh -c 'echo smoke-ok' 2>&1) || die "$m: smoke container failed: $out"
  [ "$out" = smoke-ok ] || die "$m: smoke container printed '$out'"
  info "$m: own docker engine up in $(since "$t0") ($(m_exec "$m" docker version --format '{{.Server.Version}}' 2>/dev/null), storage $(m_exec "$m" docker info --format '{{.Driver}}' 2>/dev/null))"
}

machine_down() {
  local m=$1
  m_exec "$m" systemctl disable --now "$MUNIT" >/dev/null 2>&1 || true
  # remove the machine's containers' state with the engine; keep it simple: the data root goes
  rm -rf "$T_RUN/docker/machines/$m"
  m_exec "$m" rm -f "/etc/systemd/system/$MUNIT" /etc/tmpfiles.d/flotilla-docker.conf /usr/local/bin/docker /usr/bin/docker
  m_exec "$m" systemctl daemon-reload
  # the host engine again, as at boot (the rootfs' tmpfiles rule)
  m_exec "$m" ln -sfn /run/flotilla-docker/docker.sock /run/docker.sock
  info "$m: own docker engine removed; /run/docker.sock is the host engine again"
}

machine_list() {
  if [ $# -gt 0 ]; then
    local m; for m in "$@"; do valid_machine "$m" || die "bad machine name '$m'"; m_pid1 "$m" >/dev/null || die "machine $m is not running"; done
    echo "$@"
  else
    machines_running | xargs
  fi
}

cmd_machines() {
  local op=$1 ms m t0; shift
  t0=$(now_ms)
  ms=$(machine_list "$@")
  case $op in
    up)
      [ -n "$ms" ] || die "no machine is running (machines.sh up N)"
      lock docker-machines
      need_pkgs docker.io busybox-static curl
      stage_binaries
      for m in $ms; do machine_up "$m" & done
      local rc=0; for m in $ms; do wait -n || rc=1; done
      [ $rc = 0 ] || die "docker up --machines failed (see above)"
      info "own docker engines up in $ms ($(since "$t0"))" ;;
    down)
      lock docker-machines
      for m in $ms; do machine_down "$m"; done ;;
    status)
      for m in $ms; do
        if machine_answers "$m"; then echo "$m: own engine $(m_exec "$m" docker version --format '{{.Server.Version}}' 2>/dev/null), $(m_exec "$m" docker ps -q | wc -l) running containers"
        else echo "$m: no own engine (uses the host engine)"; fi
      done ;;
  esac
}

case ${1:-} in
  up) if [ "${2:-}" = --machines ]; then shift 2; cmd_machines up "$@"; else cmd_up; fi ;;
  down) if [ "${2:-}" = --machines ]; then shift 2; cmd_machines down "$@"; else shift; cmd_down "$@"; fi ;;
  status) if [ "${2:-}" = --machines ]; then shift 2; cmd_machines status "$@"; else cmd_status; fi ;;
  *) die "usage: docker.sh up | down [--purge] | status   (each also with --machines [mK...])" ;;
esac
