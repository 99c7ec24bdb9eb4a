#!/usr/bin/env bash
# Real etcd 3.4 (Debian etcd-server; etcdctl from etcd-client), v2 and v3 APIs enabled.
#
#   etcd.sh up [N]             loopback cluster of N members (1..5; default: the size already on
#                              disk, else $TESTENV_ETCD_MEMBERS, else 3). Member i serves clients on
#                              127.0.0.1:2379, 22379, 32379, 42379, 52379 (i = 1..5), peers one port
#                              above. Members that are down are started again on their old data.
#                              Returns when every member answers "etcdctl endpoint health".
#   etcd.sh kill I             kill -9 loopback member I
#   etcd.sh stop [I]           stop member I (or all) cleanly; data kept ("up" restarts them)
#   etcd.sh down [--loopback|--machines]   stop and delete the data: both kinds by default
#   etcd.sh up --machines [N]  one member in each machine m1..mN (default: all running machines),
#                              unit flotilla-etcd.service (enabled: back after a reboot), on
#                              http://10.214.0.(10+K):2379 (and 127.0.0.1:2379 inside the machine)
#   etcd.sh status
#
# Ports: $TESTENV_ETCD_PORTS overrides the 5 client ports ("2379 22379 32379 42379 52379").
# Data: $TESTENV_ETCD_DATA (default /var/lib/flotilla-testenv/etcd)/memberI, e.g. set
# TESTENV_ETCD_DATA=/dev/shm/flotilla-etcd for tmpfs. Logs: /var/lib/flotilla-testenv/log/etcdI.log.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict
as_root
unset ETCDCTL_ENDPOINTS ETCDCTL_API   # etcdctl 3.4 refuses --endpoints together with the variable
DATA=${TESTENV_ETCD_DATA:-$T_STATE/etcd}
PIDS="$T_RUN/etcd"
COMMON=(--enable-v2=true --logger=zap --initial-cluster-token flotilla-testenv --initial-cluster-state new)

read -r -a CPORTS <<< "${TESTENV_ETCD_PORTS:-2379 22379 32379 42379 52379}"   # client ports; peer = +1
[ ${#CPORTS[@]} = 5 ] || die "TESTENV_ETCD_PORTS needs 5 client ports"
cport() { echo "${CPORTS[$(($1 - 1))]}"; }
endpoints() { local i e=""; for i in $(seq "$1"); do e+="${e:+,}http://127.0.0.1:$(cport "$i")"; done; echo "$e"; }
ectl() { ETCDCTL_API=3 etcdctl --dial-timeout=1s --command-timeout=3s "$@"; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_health() {   # wait_health ENDPOINTS WHAT
  local deadline=$(( $(now_ms) + ${TESTENV_ETCD_TIMEOUT:-60} * 1000 ))
  until ectl --endpoints="$1" endpoint health >/dev/null 2>&1; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
      ectl --endpoints="$1" endpoint health 2>&1 | sed 's/^/  /' >&2 || true
      die "etcd ($2) not healthy after ${TESTENV_ETCD_TIMEOUT:-60} s (logs $T_LOG/etcd*.log, or journalctl -u flotilla-etcd in the machines)"
    fi
    sleep 0.2
  done
}

size_on_disk() { cat "$DATA/members" 2>/dev/null || true; }

up_loopback() {
  local n=${1:-} have; have=$(size_on_disk)
  [ -n "$n" ] || n=${have:-${TESTENV_ETCD_MEMBERS:-3}}
  [[ $n =~ ^[1-5]$ ]] || die "the loopback cluster has 1 to 5 members (got '$n')"
  if [ -n "$have" ] && [ "$have" != "$n" ]; then
    die "a $have-member etcd cluster exists in $DATA; 'etcd.sh down' first to make one of $n"
  fi
  need_pkgs etcd-server etcd-client
  mkdir -p "$DATA" "$PIDS"; echo "$n" > "$DATA/members"
  local i c cluster="" eps started=() t0; t0=$(now_ms); eps=$(endpoints "$n")
  for i in $(seq "$n"); do cluster+="${cluster:+,}member$i=http://127.0.0.1:$(( $(cport "$i") + 1 ))"; done
  for i in $(seq "$n"); do
    alive_file "$PIDS/member$i.pid" etcd && continue
    c=$(cport "$i")
    if listening "$c" || listening $((c + 1)); then die "port $c or $((c + 1)) is taken by another program"; fi
    echo "=== $(date -Is) start ===" >> "$T_LOG/etcd$i.log"
    setsid etcd --name "member$i" --data-dir "$DATA/member$i" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$((c + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((c + 1))" \
      --initial-cluster "$cluster" "${COMMON[@]}" </dev/null >>"$T_LOG/etcd$i.log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
    echo $! > "$PIDS/member$i.pid"
    started+=("member$i")
  done
  wait_health "$eps" loopback
  printf 'TESTENV_ETCD_ENDPOINTS=%s\nTESTENV_ETCD_MEMBERS=%s\n' "$eps" "$n" > "$T_RUN/etcd.env"
  if [ ${#started[@]} -gt 0 ]; then info "etcd: started ${started[*]}; $n member(s) healthy in $(since "$t0"): $eps"
  else info "etcd: $n member(s) already up and healthy: $eps"; fi
}

stop_member() {   # stop_member I TERM|KILL
  local f="$PIDS/member$1.pid" pid
  if ! alive_file "$f" etcd; then rm -f "$f"; return 0; fi
  pid=$(cat "$f")
  kill "-$2" "$pid"
  for _ in $(seq 150); do alive "$pid" etcd || break; sleep 0.05; done
  if alive "$pid" etcd; then kill -KILL "$pid"; sleep 0.2; fi
  rm -f "$f"
}

up_machines() {
  local names m ip cluster="" eps="" t0; t0=$(now_ms)
  if [ $# -ge 1 ]; then
    [[ $1 =~ ^[1-9][0-9]*$ ]] || die "usage: etcd.sh up --machines [N]"
    names=$(seq -f 'm%g' 1 "$1" | xargs)
  else
    names=$(machines_running | xargs)
  fi
  [ -n "$names" ] || die "no machines are running (machines.sh up N)"
  for m in $names; do m_pid1 "$m" >/dev/null || die "machine $m is not running (machines.sh up $m)"; done
  need_pkgs etcd-server etcd-client
  for m in $names; do
    cluster+="${cluster:+,}$m=http://$(m_ip "$m"):2380"; eps+="${eps:+,}http://$(m_ip "$m"):2379"
  done
  if [ -s "$T_RUN/etcd-machines.env" ] && ! grep -qx "TESTENV_MACHINES_ETCD_ENDPOINTS=$eps" "$T_RUN/etcd-machines.env"; then
    die "the machines already run an etcd cluster with other members; 'etcd.sh down --machines' first"
  fi
  for m in $names; do
    local root; root=$(m_disk "$m")/root; ip=$(m_ip "$m")
    cmp -s /usr/bin/etcd "$root/usr/local/bin/etcd" || install -m 755 /usr/bin/etcd "$root/usr/local/bin/etcd"
    cmp -s /usr/bin/etcdctl "$root/usr/local/bin/etcdctl" || install -m 755 /usr/bin/etcdctl "$root/usr/local/bin/etcdctl"
    cat > "$root/etc/systemd/system/flotilla-etcd.service" <<EOF
# written by flotilla test/env/etcd.sh
[Unit]
Description=etcd member $m of the flotilla test environment
After=network.target

[Service]
ExecStart=/usr/local/bin/etcd --name $m --data-dir /var/lib/flotilla-etcd \\
  --listen-client-urls http://$ip:2379,http://127.0.0.1:2379 --advertise-client-urls http://$ip:2379 \\
  --listen-peer-urls http://$ip:2380 --initial-advertise-peer-urls http://$ip:2380 \\
  --initial-cluster $cluster ${COMMON[*]}
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
EOF
    m_exec "$m" systemctl daemon-reload
    m_exec "$m" systemctl enable --quiet --now --no-block flotilla-etcd.service
  done
  wait_health "$eps" "machines $names"
  printf 'TESTENV_MACHINES_ETCD_ENDPOINTS=%s\n' "$eps" > "$T_RUN/etcd-machines.env"
  info "etcd in the machines healthy in $(since "$t0"): $eps"
}

down_machines() {
  local d m
  for d in "$T_STATE"/machines/m*; do
    [ -e "$d/root/etc/systemd/system/flotilla-etcd.service" ] || [ -e "$d/upper/etc/systemd/system/flotilla-etcd.service" ] || continue
    m=${d##*/}
    if m_pid1 "$m" >/dev/null; then
      m_exec "$m" systemctl disable --quiet --now flotilla-etcd.service || true
      m_exec "$m" rm -rf /var/lib/flotilla-etcd /etc/systemd/system/flotilla-etcd.service
      m_exec "$m" systemctl daemon-reload
    else   # machine is down: edit its disk
      rm -rf "$d/upper/var/lib/flotilla-etcd" "$d/upper/etc/systemd/system/flotilla-etcd.service" \
             "$d/upper/etc/systemd/system/multi-user.target.wants/flotilla-etcd.service"
    fi
    info "etcd removed from $m"
  done
  rm -f "$T_RUN/etcd-machines.env"
}

stop_all() {   # stop_all TERM|KILL: signal every loopback member at once, then wait for all
  local f pids=() p
  for f in "$PIDS"/member*.pid; do
    [ -e "$f" ] || continue
    if alive_file "$f" etcd; then p=$(cat "$f"); kill "-$1" "$p"; pids+=("$p"); fi
    rm -f "$f"
  done
  for p in "${pids[@]+"${pids[@]}"}"; do
    for _ in $(seq 200); do alive "$p" etcd || break; sleep 0.05; done
    if alive "$p" etcd; then kill -KILL "$p"; fi
  done
}

down_loopback() {
  stop_all KILL   # the data goes next, so a graceful stop buys nothing
  rm -rf "$DATA" "$T_RUN/etcd.env"
  info "loopback etcd stopped, data deleted ($DATA)"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
  up)
    if [ "${1:-}" = --machines ]; then shift; lock etcd-machines; up_machines "$@"
    else lock etcd; up_loopback "$@"; fi ;;
  kill)
    [[ ${1:-} =~ ^[1-5]$ ]] || die "usage: etcd.sh kill I (1..5)"
    lock etcd
    alive_file "$PIDS/member$1.pid" etcd || die "loopback etcd member $1 is not running"
    stop_member "$1" KILL
    info "etcd member $1 killed (kill -9); 'etcd.sh up' restarts it" ;;
  stop)
    lock etcd
    if [ $# -ge 1 ]; then
      [[ $1 =~ ^[1-5]$ ]] || die "usage: etcd.sh stop [I]"
      stop_member "$1" TERM; info "etcd member $1 stopped"
    else
      stop_all TERM
      info "loopback etcd members stopped (data kept)"
    fi ;;
  down)
    case ${1:-} in
      --loopback) lock etcd; down_loopback ;;
      --machines) lock etcd-machines; down_machines ;;
      "") lock etcd; down_loopback; exec 9>&-; lock etcd-machines; down_machines ;;
      *) die "usage: etcd.sh down [--loopback|--machines]" ;;
    esac ;;
  status)
    for f in "$T_RUN/etcd.env" "$T_RUN/etcd-machines.env"; do
      [ -r "$f" ] || continue
      eps=$(sed -n 's/^TESTENV_\(MACHINES_\)\{0,1\}ETCD_ENDPOINTS=//p' "$f")
      ectl --endpoints="$eps" endpoint status -w table 2>&1 || true
    done ;;
  *) die "usage: etcd.sh up [N] | up --machines [N] | kill I | stop [I] | down [--loopback|--machines] | status" ;;
esac
