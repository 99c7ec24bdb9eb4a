#!/bin/bash
# A deploy runbook as operators wrote them for fleetctl v1.0, to be run unchanged against flotilla
# (installed as `fleetctl`) on a member of a 3-machine cluster:
#
#   bash test/runbooks/fleetctl-runbook.sh [PREFIX]
#
# It writes its own unit files (PREFIX-hello.service, PREFIX-web@.service) in a temp directory,
# then: submit, start, list-units, status, journal (also -f, ended by SIGINT), restart, scale a
# template, stop, destroy. Every step checks fleetctl's output and exit codes; the script ends with
# "== runbook ok" and exit 0, or stops at the first failure (set -e). What it prints is stable
# (no machine IDs), so a test can compare it.
set -euo pipefail

P=${1:-rb$$}
HELLO="$P-hello.service"
WEB="$P-web"
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cd "$DIR"

fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$HELLO" <<EOF
[Unit]
Description=Runbook hello

[Service]
ExecStart=/bin/sh -c 'echo "hello from the runbook"; while true; do echo tick; sleep 1; done'
EOF

cat > "$WEB@.service" <<EOF
[Unit]
Description=Runbook web %i

[Service]
ExecStart=/bin/sh -c 'echo "web %i up"; exec sleep 100000'

[X-Fleet]
Conflicts=$WEB@*.service
EOF

echo "== machines"
machines=$(fleetctl list-machines --no-legend | wc -l)
echo "machines: $machines"
[ "$machines" -ge 3 ] || fail "expected 3 machines, got $machines"
fleetctl list-machines | head -1 | grep -q $'^MACHINE\t\tIP\t\tMETADATA$' || fail "list-machines header"

echo "== submit"
out=$(fleetctl submit "$HELLO" "$WEB@.service")
[ "$out" = "Unit $HELLO inactive
Unit $WEB@.service inactive" ] || fail "submit printed: $out"
# Submitting the same files again is silent.
[ -z "$(fleetctl submit "$HELLO")" ] || fail "second submit was not silent"
fleetctl list-unit-files --no-legend --fields=unit,dstate,state | grep "^$P-" | sed "s/^$P-/PREFIX-/"
fleetctl cat "$HELLO" | grep -q '^Description=Runbook hello$' || fail "cat"

echo "== start"
out=$(fleetctl start "$HELLO")
echo "$out" | grep -Eq "^Unit $HELLO launched on [0-9a-f]{8}\.\.\./[0-9.]+$" || fail "start printed: $out"
sub=unknown
for _ in $(seq 1 30); do
  sub=$(fleetctl list-units --no-legend --fields=unit,sub | awk -v u="$HELLO" '$1 == u {print $2}')
  [ "$sub" = running ] && break
  sleep 1
done
echo "sub: $sub"
[ "$sub" = running ] || fail "$HELLO is $sub, not running"
fleetctl list-units --no-legend --fields=unit,load,active,sub | grep "^$HELLO" | sed "s/^$P-/PREFIX-/"
# fleetctl's start of a unit that already runs is silent.
[ -z "$(fleetctl start "$HELLO")" ] || fail "second start was not silent"

echo "== status"
fleetctl status "$HELLO" > status.txt || fail "status exited $?"
grep -q "$HELLO" status.txt || fail "status does not name the unit"
grep -Eq 'Active: active \(running\)' status.txt || fail "status is not active (running)"
echo "status: active (running)"
set +e
fleetctl status "$P-nope.service" 2> status.err
rc=$?
set -e
{ [ $rc -eq 1 ] && [ "$(cat status.err)" = "Unit $P-nope.service does not exist." ]; } || fail "status of a missing unit: $rc $(cat status.err)"

echo "== journal"
fleetctl journal --lines=50 "$HELLO" > journal.txt || fail "journal exited $?"
grep -q 'hello from the runbook' journal.txt || fail "journal lacks the unit's output"
echo "journal: has the unit's output"
# Follow for a few seconds, then Ctrl-C (SIGINT), as an operator would.
set +e
timeout -s INT 4 fleetctl journal -f --lines=1 "$HELLO" > follow.txt
rc=$?
set -e
[ $rc -eq 124 ] || fail "journal -f ended by itself (exit $rc)"
ticks=$(grep -c tick follow.txt || true)
[ "$ticks" -ge 2 ] || fail "journal -f streamed $ticks ticks in 4 s"
echo "journal -f: streamed until interrupted"

echo "== restart"
out=$(fleetctl restart "$HELLO")
echo "$out" | sed -E 's/[0-9a-f]{8}\.\.\.\/[0-9.]+/MACHINE/; s/^Unit '"$P"'-/Unit PREFIX-/'

echo "== scale"
fleetctl start "$WEB@1.service" "$WEB@2.service" "$WEB@3.service" > scale.txt
[ "$(grep -c ' launched on ' scale.txt)" -eq 3 ] || fail "scale: $(cat scale.txt)"
spread=$(fleetctl list-units --no-legend --fields=unit,machine | grep "^$WEB@" | awk '{print $2}' | sort -u | wc -l)
echo "web instances on $spread machines"
[ "$spread" -eq 3 ] || fail "Conflicts did not spread the instances"

echo "== stop"
fleetctl stop "$HELLO" 2> stop.err | sed -E 's/[0-9a-f]{8}\.\.\.\/[0-9.]+/MACHINE/; s/^Unit '"$P"'-/Unit PREFIX-/'
[ "$(cat stop.err)" = "Successfully stopped units [$HELLO]." ] || fail "stop said: $(cat stop.err)"
fleetctl list-unit-files --no-legend --fields=unit,dstate,state | grep "^$HELLO" | sed "s/^$P-/PREFIX-/"

echo "== destroy"
fleetctl destroy "$HELLO" "$WEB@1.service" "$WEB@2.service" "$WEB@3.service" "$WEB@.service" | sed "s/ $P-/ PREFIX-/"
left=$(fleetctl list-unit-files --no-legend | grep -c "^$P-" || true)
rows=$(fleetctl list-units --no-legend | grep -c "^$P-" || true)
echo "left: $left unit files, $rows list-units rows"
{ [ "$left" -eq 0 ] && [ "$rows" -eq 0 ]; } || fail "destroy left units behind"
set +e
fleetctl destroy "$HELLO" 2> destroy.err
rc=$?
set -e
{ [ $rc -eq 0 ] && [ "$(cat destroy.err)" = "Units not found in registry" ]; } || fail "destroy of a missing unit: $rc"

echo "== runbook ok"
