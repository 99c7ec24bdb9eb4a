#!/usr/bin/env bash
# flotilla's main job on this machine, from a fresh clone, as root (README "The two commands"):
#   - on a host running systemd: install the agent as flotilla.service with the embedded registry;
#   - on a host without systemd as PID 1 (a container, a CI VM): boot 3 systemd-nspawn machines,
#     each with a real systemd, a real etcd member and the agent as a systemd service.
# Either way it starts the example units and shows `flotilla list-machines` and `list-units`.
#   sudo bash scripts/up.sh            # bring it up
#   sudo bash scripts/up.sh down       # take it down again
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[ "$(id -u)" = 0 ] || { echo "scripts/up.sh must run as root" >&2; exit 1; }
log() { printf '[flotilla] %s\n' "$*" >&2; }

pid1=$(cat /proc/1/comm 2>/dev/null || true)

if [ "${1:-}" = down ]; then
  if [ "$pid1" = systemd ]; then
    systemctl disable --now flotilla.service || true
    rm -f /etc/systemd/system/flotilla.service /usr/local/bin/flotilla /usr/local/bin/fleetctl
    systemctl daemon-reload
  else
    bash test/env/cluster.sh wipe || true
    bash test/env/etcd.sh down --machines || true
    bash test/env/machines.sh down
  fi
  exit 0
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund >/dev/null
fi
log "building"
npm run -s build

if [ "$pid1" = systemd ]; then
  log "systemd is PID 1: installing flotilla.service (embedded registry)"
  node=$(command -v node)
  sed -e "s|^ExecStart=.*|ExecStart=$node $repo/bin/flotilla agent|" systemd/flotilla.service > /etc/systemd/system/flotilla.service
  ln -sf "$repo/bin/flotilla" /usr/local/bin/flotilla
  ln -sf "$repo/bin/flotilla" /usr/local/bin/fleetctl
  systemctl daemon-reload
  systemctl enable --now flotilla.service
  ctl() { flotilla "$@"; }
  examples=$repo/examples
else
  log "no systemd as PID 1: booting 3 machines with systemd, etcd and the agent (test/env)"
  bash test/env/machines.sh up 3
  bash test/env/etcd.sh up --machines 3
  bash test/env/cluster.sh up --ttl 10s
  ctl() { bash test/env/cluster.sh ctl m1 "$@"; }
  examples=/project/examples
fi

log "starting the example units"
ctl start "$examples/hello.service" "$examples/hello@1.service" "$examples/hello@2.service"
echo
echo "\$ flotilla list-machines"
ctl list-machines
echo
echo "\$ flotilla list-units"
ctl list-units

if [ "$pid1" != systemd ]; then
  # The agents run inside the machines; /var/run/fleet.sock on this host does not exist. The host
  # reaches them over their mutual-TLS API with the test CA's host certificate.
  eval "$(bash test/env/env.sh)"
  state=${TESTENV_STATE:-/var/lib/flotilla-testenv}
  cli_env=$state/cluster-cli.env
  umask 077
  cat > "$cli_env" <<ENV
export FLEETCTL_ENDPOINT=https://${TESTENV_M1_IP}:${TESTENV_API_PORT:-54728}
export FLEETCTL_CA_FILE=$state/cluster-pki/ca.pem
export FLEETCTL_CERT_FILE=$state/cluster-pki/host.pem
export FLEETCTL_KEY_FILE=$state/cluster-pki/host.key
ENV
  cat <<MSG

The cluster runs inside the machines m1..m3 (flotilla's socket /var/run/fleet.sock is theirs, not
this host's). To use the CLI:
  inside a machine:   bash test/env/exec.sh m1 fleetctl list-units
  from this host:     source $cli_env && node bin/flotilla list-units
                      (the agents' mutual-TLS API with the test CA; as root: the key is 0600)
Take it down with:    sudo bash scripts/up.sh down
MSG
fi
