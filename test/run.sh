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

# The same code on the other supported Node majors (FLOTILLA_OTHER_NODES="" to skip, e.g. offline).
for major in ${FLOTILLA_OTHER_NODES-22 24}; do
  step "node $major: unit and in-process integration suites" bash test/other-node.sh "$major"
done

others=()
for major in ${FLOTILLA_OTHER_NODES-22 24}; do others+=(".test-results/node-$major.json"); done
node test/support/summary.mjs .test-results/vitest.json "${#failed_steps[@]}" "${failed_steps[*]:-}" "${others[@]}"
summary_rc=$?
log "total $(( $(date +%s) - t0 )) s"
[ $vitest_rc = 0 ] && [ $summary_rc = 0 ] && [ ${#failed_steps[@]} = 0 ]
