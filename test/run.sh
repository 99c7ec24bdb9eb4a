#!/usr/bin/env bash
# The test command (README "Testing"): on a fresh Debian 12 machine, as root, install everything,
# bring up the real test environment (etcd cluster, Docker engine, systemd-nspawn machines), run
# the checks and every test suite against it, tear the environment down, and print one closing line
# "N passed, N failed". Exit status is non-zero when anything failed.
#
#   sudo bash test/run.sh              # everything
#   sudo bash test/run.sh --keep       # leave the test environment up afterwards
#   FLOTILLA_TEST_ARGS="test/unit" sudo -E bash test/run.sh   # a subset (vitest filters)
set -uo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1

log() { printf '[test/run %s] %s\n' "$(date +%T)" "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "test/run.sh must run as root (it starts etcd, dockerd and systemd-nspawn machines)" >&2; exit 1; }

failed_steps=()
step() { # step NAME CMD...: run a check, remember failures, keep going
  local name=$1; shift
  log "$name"
  if ! "$@"; then failed_steps+=("$name"); log "FAILED: $name"; fi
}

t0=$(date +%s)
# The dashboard's browser test drives Debian's chromium (playwright-core never downloads one).
command -v chromium >/dev/null || { log "apt-get install chromium"; { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/tmp/flotilla-apt.log 2>&1 || { tail -20 /tmp/flotilla-apt.log >&2; echo "0 passed, 1 failed"; exit 1; }; }
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >/tmp/flotilla-npm-ci.log 2>&1 || { tail -30 /tmp/flotilla-npm-ci.log >&2; echo "0 passed, 1 failed"; exit 1; }
fi

log "bringing up the test environment"
if [ $keep = 0 ]; then trap 'log "tearing down the test environment"; bash test/env/down.sh >/dev/null 2>&1 || true' EXIT; fi
# The QEMU VM tests' guest image (test/env/vm/image.sh; ~2 min cold, cached by content) is built
# beside the environment's own set-up; its apt installs queue behind up.sh's (need_pkgs holds a lock).
# The VM tests call image.sh again: they find the image, or wait for this build (its lock), or
# report its error themselves.
if [ -z "${FLOTILLA_TEST_ARGS:-}" ]; then
  bash test/env/vm/image.sh >/tmp/flotilla-vm-image.log 2>&1 &
fi
if ! bash test/env/up.sh "${FLOTILLA_TEST_MACHINES:-3}" >/tmp/flotilla-env-up.log 2>&1; then
  tail -40 /tmp/flotilla-env-up.log >&2
  echo "0 passed, 1 failed"
  exit 1
fi
eval "$(bash test/env/env.sh)"
log "environment up after $(( $(date +%s) - t0 )) s"

step "typecheck" npm run -s typecheck
step "build" npm run -s build
step "lint" npx eslint .

mkdir -p .test-results
rm -f .test-results/vitest.json
# shellcheck disable=SC2086
TESTENV_REQUIRED=1 npx vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json ${FLOTILLA_TEST_ARGS:-}
vitest_rc=$?
reports=.test-results/vitest.json

# The same code on the other supported Node majors (FLOTILLA_OTHER_NODES="" to skip, e.g. offline).
# Every major runs the unit suite; the last (newest) one also the in-process real-daemon files
# (registry, D-Bus, Docker, proxy), which the main run covers on Node 20 (saves ~1 min a major).
# shellcheck disable=SC2206
majors=(${FLOTILLA_OTHER_NODES-22 24})

# The partition, etcd-outage, failover and agent-restart files once more in CoreOS's own layout, where
# each agent knows only its local etcd member (etcd_servers=http://127.0.0.1:2379); the main run
# lists every member. Full runs only (FLOTILLA_LAYOUT_PASS=0 to skip).
if [ -z "${FLOTILLA_TEST_ARGS:-}" ] && [ "${FLOTILLA_LAYOUT_PASS:-1}" = 1 ]; then
  log "etcd layout pass: each agent knows only its local member"
  rm -f .test-results/vitest-local.json
  TESTENV_ETCD_LAYOUT=local TESTENV_REQUIRED=1 npx vitest run --reporter=default --reporter=json \
    --outputFile.json=.test-results/vitest-local.json test/integration/cluster-failover.test.ts \
    test/integration/cluster-etcd.test.ts test/integration/cluster-agent.test.ts || vitest_rc=1
  reports+=,.test-results/vitest-local.json
fi

for major in "${majors[@]}"; do
  if [ "$major" = "${majors[-1]}" ]; then
    step "node $major: unit and in-process integration suites" bash test/other-node.sh "$major" all
  else
    step "node $major: unit suite" bash test/other-node.sh "$major" unit
  fi
done

others=()
for major in "${majors[@]}"; do others+=(".test-results/node-$major.json"); done
node test/support/summary.mjs "$reports" "${#failed_steps[@]}" "${failed_steps[*]:-}" "${others[@]}"
summary_rc=$?
log "total $(( $(date +%s) - t0 )) s"
[ $vitest_rc = 0 ] && [ $summary_rc = 0 ] && [ ${#failed_steps[@]} = 0 ]
