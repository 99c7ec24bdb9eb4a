#!/usr/bin/env bash
# A flotilla cluster on the test machines: in each running machine, the agent runs as a real
# systemd service (flotilla.service, from the repo's systemd/flotilla.service) against the etcd
# member inside that machine (etcd.sh up --machines), or the embedded registry.
#
#   cluster.sh up [--ttl 3s] [--interval 1] [--embedded] [--local-etcd] [mK...]
#                                  install + (re)start the agents; --local-etcd (or
#                                  TESTENV_ETCD_LAYOUT=local): each agent knows only its own member,
#                                  etcd_servers=http://127.0.0.1:2379 (the CoreOS layout)
#   cluster.sh down [mK...]        stop the agents (their units stop and they leave the cluster)
#   cluster.sh wipe                stop the agents and delete flotilla's keys from the machines' etcd
#   cluster.sh ctl mK ARGS...      run `flotilla ARGS...` (also `fleetctl`) inside mK
#
# Peer API: each agent also serves its API on <machine IP>:54728 (TESTENV_API_PORT) with mutual TLS,
# so agents forward `status`/`journal` to the machine hosting a unit. A test CA and one certificate
# per machine (IP SAN = the machine's IP, API role agent), plus `host.pem` (role operator) for tests on the host (IP SAN 10.214.0.1),
# are made once with openssl and kept in $TESTENV_STATE/cluster-pki; each machine gets ca.pem and its
# own pair in /etc/flotilla/tls/.
#
# The machines see the repository read-only at /project (built dist/ and node_modules are needed:
# `npm run build` first) and the host's node at /usr/local/bin/node.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
strict

ttl=3s interval=1 embedded=0 localetcd=0
[ "${TESTENV_ETCD_LAYOUT:-}" = local ] && localetcd=1
# Where the machines see the repository: /project, or another checkout made visible with
# TESTENV_BIND_RO (machines.sh) and named here.
MPROJ=${TESTENV_MACHINE_PROJECT:-/project}
PKI="$T_STATE/cluster-pki"
API_PORT=${TESTENV_API_PORT:-54728}
usage() { die "usage: cluster.sh up [--ttl D] [--interval S] [--embedded] [--local-etcd] [mK...] | down [mK...] | wipe | ctl mK ARGS..."; }

want_machines() {
  if [ $# -gt 0 ]; then printf '%s\n' "$@"; else machines_running; fi
}

ossl() { openssl "$@" >/dev/null 2>&1 || die "openssl $1 failed (in $PKI)"; }

ensure_pki() { # ensure_pki mK...: the cluster CA and a certificate for each machine and for the host
  need_pkgs openssl
  mkdir -p "$PKI"
  (
    flock 9
    umask 077
    if [ ! -f "$PKI/ca.pem" ] || [ ! -f "$PKI/ca.key" ]; then
      rm -f "$PKI"/*.pem "$PKI"/*.key "$PKI"/*.srl
      ossl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=flotilla testenv cluster CA" \
        -keyout "$PKI/ca.key" -out "$PKI/ca.pem"
    fi
    local name ip role
    for name in "$@" host; do
      # API role in a SAN URI (src/api/roles.ts): agents are `agent`, the host's tests `operator`.
      # Certificates made before roles existed have none: they are made again.
      if [ "$name" = host ]; then role=operator; else role=agent; fi
      if [ -f "$PKI/$name.pem" ] && [ -f "$PKI/$name.key" ] &&
        openssl x509 -in "$PKI/$name.pem" -noout -text 2>/dev/null | grep -q "URI:urn:flotilla:role:$role"; then
        continue
      fi
      if [ "$name" = host ]; then ip=$T_HOST_IP; else ip=$(m_ip "$name"); fi
      printf 'subjectAltName=IP:%s,URI:urn:flotilla:role:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$ip" "$role" > "$PKI/$name.ext"
      ossl req -newkey rsa:2048 -nodes -subj "/CN=flotilla-$name" -keyout "$PKI/$name.key" -out "$PKI/$name.csr"
      ossl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.pem"
      rm -f "$PKI/$name.csr" "$PKI/$name.ext"
    done
  ) 9>"$PKI/.lock"
}

install_agent() { # install_agent mK
  local m=$1 servers="" unit
  if [ $embedded = 0 ]; then
    servers=$(sed -n 's/^TESTENV_MACHINES_ETCD_ENDPOINTS=//p' "$T_RUN/etcd-machines.env" 2>/dev/null || true)
    [ -n "$servers" ] || die "no etcd members in the machines: run 'etcd.sh up --machines' (or use --embedded)"
    [ $localetcd = 1 ] && servers=http://127.0.0.1:2379
  fi
  unit=$(sed -e "s|^ExecStart=.*|ExecStart=/usr/local/bin/node $MPROJ/bin/flotilla agent|" \
             -e 's|^WatchdogSec=.*|WatchdogSec=30|' "$TESTENV_DIR/../../systemd/flotilla.service")
  m_exec "$m" mkdir -p /etc/flotilla/tls
  m_exec "$m" chmod 700 /etc/flotilla/tls
  local f
  for f in ca.pem:ca.pem "$m.pem":agent.pem "$m.key":agent.key; do
    m_exec "$m" sh -c 'umask 077; cat > "/etc/flotilla/tls/$1"' sh "${f#*:}" < "$PKI/${f%%:*}"
  done
  printf '%s\n' "$unit" | m_exec "$m" sh -c 'cat > /etc/systemd/system/flotilla.service'
  {
    echo "FLOTILLA_AGENT_TTL=$ttl"
    echo "FLOTILLA_ENGINE_RECONCILE_INTERVAL=$interval"
    echo "FLOTILLA_METADATA=name=$m"
    echo "FLOTILLA_PUBLIC_IP=$(m_ip "$m")"
    [ -n "$servers" ] && echo "FLOTILLA_ETCD_SERVERS=$servers"
    echo "FLOTILLA_ETCD_REQUEST_TIMEOUT=2"
    # Not the default /run/flotilla/units: the systemd driver tests use that one in the same machines.
    echo "FLOTILLA_UNITS_DIRECTORY=/run/flotilla/cluster-units"
    echo "FLOTILLA_API_LISTEN=$(m_ip "$m"):$API_PORT"
    echo "FLOTILLA_API_CAFILE=/etc/flotilla/tls/ca.pem"
    echo "FLOTILLA_API_CERTFILE=/etc/flotilla/tls/agent.pem"
    echo "FLOTILLA_API_KEYFILE=/etc/flotilla/tls/agent.key"
  } | m_exec "$m" sh -c 'cat > /etc/flotilla/flotilla.env'
  m_exec "$m" ln -sf "$MPROJ"/bin/flotilla /usr/local/bin/flotilla
  m_exec "$m" ln -sf "$MPROJ"/bin/flotilla /usr/local/bin/fleetctl
  m_exec "$m" ln -sf "$MPROJ"/bin/flotilla /usr/local/bin/locksmithctl
  m_exec "$m" systemctl daemon-reload
  m_exec "$m" systemctl enable flotilla.service >/dev/null 2>&1
  m_exec "$m" systemctl restart flotilla.service
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case "$cmd" in
  up)
    as_root
    ms=()
    while [ $# -gt 0 ]; do
      case $1 in
        --ttl) ttl=$2; shift 2 ;;
        --interval) interval=$2; shift 2 ;;
        --embedded) embedded=1; shift ;;
        --local-etcd) localetcd=1; shift ;;
        m*) valid_machine "$1" || usage; ms+=("$1"); shift ;;
        *) usage ;;
      esac
    done
    [ -f "$TESTENV_DIR/../../dist/cli/main.js" ] || die "dist/ is missing: run 'npm run build' first"
    t0=$(now_ms)
    mapfile -t list < <(want_machines "${ms[@]}")
    [ ${#list[@]} -gt 0 ] || die "no machines are running: machines.sh up N"
    ensure_pki "${list[@]}"
    for m in "${list[@]}"; do install_agent "$m" & done
    wait
    for m in "${list[@]}"; do
      m_exec "$m" systemctl is-active --quiet flotilla.service || { m_exec "$m" journalctl -u flotilla --no-pager -n 30 >&2; die "flotilla did not start in $m"; }
    done
    info "cluster: agents running in ${list[*]} (ttl $ttl) in $(since "$t0")"
    ;;
  down)
    as_root
    mapfile -t list < <(want_machines "$@")
    for m in "${list[@]}"; do m_exec "$m" systemctl stop flotilla.service 2>/dev/null || true & done
    wait
    ;;
  wipe)
    as_root
    mapfile -t list < <(machines_running)
    for m in "${list[@]}"; do m_exec "$m" systemctl stop flotilla.service 2>/dev/null || true & done
    wait
    for m in "${list[@]}"; do
      m_exec "$m" rm -rf /var/lib/flotilla /run/flotilla
    done
    if [ ${#list[@]} -gt 0 ]; then
      m_exec "${list[0]}" env ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 del --prefix /flotilla/ >/dev/null 2>&1 || true
    fi
    ;;
  ctl)
    [ $# -ge 1 ] || usage
    m=$1; shift
    valid_machine "$m" || usage
    m_exec "$m" /usr/local/bin/node "$MPROJ"/bin/flotilla "$@"
    ;;
  *) usage ;;
esac
