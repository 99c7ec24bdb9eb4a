#!/usr/bin/env bash
# Check, with plain command-line tools, every part of the test environment that is up:
# Docker (API, run, logs, stop), loopback etcd (health, put on each member / get on every
# member, v2), each machine (systemd state, units, journal, D-Bus from the host, node, /project,
# docker socket, network, partitions), the etcd members in the machines.
# Prints one line per check and ends with "N passed, N failed". Exit 0 when all passed,
# 1 when something failed, 2 when nothing is up. Leaves nothing behind (partitions healed).
source "$(dirname "$(readlink -f "$0")")/lib.sh"
as_root
set -uo pipefail
unset ETCDCTL_ENDPOINTS ETCDCTL_API
eval "$("$TESTENV_DIR/env.sh")"
PASS=0 FAIL=0 ANY=0 T0=$(now_ms)
X="$TESTENV_DIR/exec.sh"
P="$TESTENV_DIR/partition.sh"

check() {   # check DESCRIPTION CMD...  (output shown only on failure)
  local what=$1 out; shift
  if out=$("$@" 2>&1); then PASS=$((PASS + 1)); printf 'ok   %s\n' "$what"
  else FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$what"; printf '%s\n' "$out" | tail -6 | sed 's/^/       /'; fi
}
ectl() { ETCDCTL_API=3 etcdctl --dial-timeout=2s --command-timeout=5s "$@"; }
reach() { "$X" "$1" ping -n -c1 -W1 "$2" >/dev/null 2>&1; }   # reach mK PEER

# ---- docker --------------------------------------------------------------------------------
if [ -n "${TESTENV_DOCKER_SOCKET:-}" ]; then
  ANY=1; S=$TESTENV_DOCKER_SOCKET; c="fl-selftest-$$"
  dk() { docker -H "unix://$S" "$@"; }
  check "docker: engine answers on $S" curl -fsS --max-time 3 --unix-socket "$S" http://docker/_ping
  check "docker: run --rm busybox" bash -c "[ \"\$(docker -H unix://$S run --rm --network none busybox echo hi)\" = hi ]"
  check "docker: detached container, logs" bash -c "docker -H unix://$S run -d --name $c --network none busybox sh -c 'echo started; exec sleep 60' >/dev/null \
    && for i in \$(seq 50); do docker -H unix://$S logs $c 2>&1 | grep -q started && exit 0; sleep 0.1; done; exit 1"
  check "docker: stop + rm" bash -c "docker -H unix://$S stop -t 1 $c >/dev/null && docker -H unix://$S rm $c >/dev/null"
  dk rm -f "$c" >/dev/null 2>&1
fi

# ---- loopback etcd -------------------------------------------------------------------------
etcd_checks() {   # etcd_checks LABEL ENDPOINTS
  local label=$1 eps=$2 e k="/flotilla-selftest/$$"
  check "etcd $label: endpoint health ($eps)" ectl --endpoints="$eps" endpoint health
  for e in ${eps//,/ }; do
    check "etcd $label: put on $e, get on every member" bash -c "
      ETCDCTL_API=3 etcdctl --endpoints=$e put $k/${e##*:} v-$$ >/dev/null || exit 1
      for f in ${eps//,/ }; do
        [ \"\$(ETCDCTL_API=3 etcdctl --endpoints=\$f get $k/${e##*:} --print-value-only)\" = v-$$ ] || { echo \"not on \$f\"; exit 1; }
      done"
  done
  check "etcd $label: v2 API set/get" bash -c "ETCDCTL_API=2 etcdctl --endpoints=${eps%%,*} set $k-v2 x >/dev/null && [ \"\$(ETCDCTL_API=2 etcdctl --endpoints=${eps%%,*} get --quorum $k-v2)\" = x ]"
  ectl --endpoints="$eps" del --prefix "$k" >/dev/null 2>&1
  ETCDCTL_API=2 etcdctl --endpoints="${eps%%,*}" rm "$k-v2" >/dev/null 2>&1
}
if [ -n "${TESTENV_ETCD_ENDPOINTS:-}" ]; then
  ANY=1; etcd_checks loopback "$TESTENV_ETCD_ENDPOINTS"
  check "etcd loopback: $TESTENV_ETCD_MEMBERS members in the member list" \
    bash -c "[ \$(ETCDCTL_API=3 etcdctl --endpoints=${TESTENV_ETCD_ENDPOINTS%%,*} member list | wc -l) = $TESTENV_ETCD_MEMBERS ]"
fi

# ---- machines ------------------------------------------------------------------------------
MS=${TESTENV_MACHINES//,/ }
ids=""
for m in $MS; do
  ANY=1; U=${m^^}; bv="TESTENV_${U}_BUS"; iv="TESTENV_${U}_IP"; bus=${!bv}; ip=${!iv}
  check "$m: systemd is running" bash -c "$X $m systemctl is-system-running | grep -Eqx 'running|degraded'"
  check "$m: hostname $m, address $ip, no default route" bash -c "[ \"\$($X $m hostname)\" = $m ] && $X $m ip -4 -o addr show eth0 | grep -q ' $ip/24 ' && [ -z \"\$($X $m ip route show default)\" ]"
  ids+="$("$X" "$m" cat /etc/machine-id) "
  check "$m: systemd-run transient unit is active" bash -c "$X $m systemd-run --quiet --unit fl-selftest-t sleep 120 && $X $m systemctl is-active --quiet fl-selftest-t"
  check "$m: unit file + daemon-reload + start + journal" bash -c "$X $m sh -c 'printf \"[Service]\\nExecStart=/bin/sh -c \\\"echo selftest-hello; exec sleep 120\\\"\\n\" > /run/systemd/system/fl-selftest-f.service && systemctl daemon-reload && systemctl start fl-selftest-f' \
    && for i in \$(seq 30); do $X $m journalctl -u fl-selftest-f -o json --no-pager | grep -q '\"MESSAGE\":\"selftest-hello\"' && exit 0; sleep 0.1; done; exit 1"
  check "$m: busctl from the host over $bus" bash -c "busctl --address=$bus get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState | grep -Eq 'running|degraded' \
    && busctl --address=$bus call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager GetUnit s fl-selftest-t.service >/dev/null"
  "$X" "$m" sh -c 'systemctl stop fl-selftest-t fl-selftest-f; rm -f /run/systemd/system/fl-selftest-f.service; systemctl daemon-reload' >/dev/null 2>&1
  check "$m: node runs, /project is mounted read-only" bash -c "$X $m node -e 'process.exit(0)' && $X $m test -d /project && ! $X $m touch /project/.fl-selftest 2>/dev/null"
  if [ -n "${TESTENV_DOCKER_SOCKET:-}" ]; then
    check "$m: host docker engine at /run/docker.sock" $X "$m" curl -fsS --max-time 3 --unix-socket /run/docker.sock http://docker/_ping
  fi
  check "$m: reaches host and every machine" bash -c "for p in host $MS; do $X $m ping -n -c1 -W1 \$p >/dev/null || { echo \"cannot reach \$p\"; exit 1; }; done"
done
if [ -n "$MS" ]; then
  check "machines have distinct machine-ids" bash -c "[ \$(echo $ids | wc -w) = \$(echo $ids | tr ' ' '\n' | sort -u | wc -l) ]"
  check "host drops forwarding to/from $T_BRIDGE" bash -c "iptables -w -C FORWARD -i $T_BRIDGE ! -o $T_BRIDGE -j DROP && iptables -w -C FORWARD -o $T_BRIDGE ! -i $T_BRIDGE -j DROP"
  set -- $MS
  a=$1; b=${2:-}
  check "partition $a on: $a cut from host${b:+ and $b}, own loopback works" bash -c "
    $P $a on 2>/dev/null || exit 1
    ! $X $a ping -n -c1 -W1 host >/dev/null || { echo 'still reaches host'; exit 1; }
    ${b:+! $X $b ping -n -c1 -W1 $a >/dev/null || { echo '$b still reaches $a'; exit 1; }}
    $X $a ping -n -c1 -W1 127.0.0.1 >/dev/null || { echo 'loopback broken'; exit 1; }"
  check "partition $a off: heals" bash -c "$P $a off 2>/dev/null && $X $a ping -n -c1 -W1 host >/dev/null ${b:+&& $X $b ping -n -c1 -W1 $a >/dev/null}"
  if [ $# -ge 3 ]; then
    c3=$3
    check "partition $a on $b: only $a<->$b cut ($a<->$c3 and $a<->host still fine)" bash -c "
      $P $a on $b 2>/dev/null || exit 1
      ! $X $a ping -n -c1 -W1 $b >/dev/null && ! $X $b ping -n -c1 -W1 $a >/dev/null || { echo '$a<->$b not cut'; exit 1; }
      $X $a ping -n -c1 -W1 $c3 >/dev/null && $X $a ping -n -c1 -W1 host >/dev/null || { echo 'too much cut'; exit 1; }"
    check "silent drop: TCP from $b to $a times out (no refusal)" bash -c "
      $X $b curl -sS --max-time 1 http://$a:9/ >/dev/null 2>&1; [ \$? = 28 ]"
  fi
  "$P" off >/dev/null 2>&1
fi

if [ -n "${TESTENV_MACHINES_ETCD_ENDPOINTS:-}" ]; then
  ANY=1; etcd_checks machines "$TESTENV_MACHINES_ETCD_ENDPOINTS"
fi

[ $ANY = 1 ] || { echo "nothing is up (run test/env/up.sh)"; exit 2; }
echo "selftest took $(since "$T0")"
echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
