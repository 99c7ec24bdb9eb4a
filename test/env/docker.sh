#!/usr/bin/env bash
# A real Docker engine for flotilla's tests (Debian's docker.io, started by hand: no systemd here).
#
#   docker.sh up            install docker.io busybox-static iptables if missing; start dockerd
#                           unless an engine already answers (that one is left alone); import a
#                           local busybox:latest (no registry is reachable); smoke-run a container
#   docker.sh down [--purge]   remove all containers, stop the dockerd this script started
#                           (images kept; --purge deletes /var/lib/docker too)
#   docker.sh status
#
# Engine flags: --bridge=none --iptables=false --ip6tables=false --ip-forward=false, so it never touches the host's
# firewall or routing; containers get network "none" or "--network host". Storage driver: the
# first of $TESTENV_DOCKER_STORAGE ("overlay2 fuse-overlayfs vfs") that works.
# Sockets: $TESTENV_DOCKER_SOCKET (/var/run/docker.sock) and /run/flotilla-testenv/docker/
# docker.sock, the directory the machines see as /run/flotilla-docker (their /run/docker.sock).
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

case ${1:-} in
  up) cmd_up ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  *) die "usage: docker.sh up | down [--purge] | status" ;;
esac
