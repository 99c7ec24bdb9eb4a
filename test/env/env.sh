#!/usr/bin/env bash
# Print what of the test environment is up, for tests and shells (no root needed):
#   eval "$(test/env/env.sh)"      export TESTENV_...=... lines
#   test/env/env.sh --json         one JSON object (test/support/testbed.ts reads this)
#
# TESTENV_DIR                      this folder (scripts to call from tests)
# TESTENV_DOCKER_SOCKET, DOCKER_HOST   /var/run/docker.sock, unix:///var/run/docker.sock
# TESTENV_ETCD_ENDPOINTS           loopback members, comma list (http://127.0.0.1:2379,...)
# TESTENV_ETCD_MEMBERS             their number
# TESTENV_MACHINES                 running machines, comma list (m1,m2,m3)
# TESTENV_HOST_IP                  the host's address on the machines' network
# TESTENV_MK_IP, TESTENV_MK_BUS    address and system-bus address (unix:path=...) of machine mK
# TESTENV_MACHINES_ETCD_ENDPOINTS  members running inside the machines (etcd.sh up --machines)
# TESTENV_MACHINE_DOCKER           machines that run their own Docker engine (docker.sh up --machines)
# A key is absent when its part is not up.
source "$(dirname "$(readlink -f "$0")")/lib.sh"
set -uo pipefail

keys=() vals=()
add() { keys+=("$1"); vals+=("$2"); }
add_file() {   # KEY=VALUE lines of a fragment written by the up scripts
  local f=$1 k v
  [ -r "$f" ] || return 0
  while IFS='=' read -r k v; do
    [[ $k =~ ^[A-Z][A-Z0-9_]*$ ]] && add "$k" "$v"
  done < "$f"
}

add TESTENV_DIR "$TESTENV_DIR"
if ! stale_run; then
  if [ -r "$T_RUN/docker.env" ]; then
    sock=$(sed -n 's/^TESTENV_DOCKER_SOCKET=//p' "$T_RUN/docker.env")
    if [ -S "$sock" ]; then add_file "$T_RUN/docker.env"; fi
  fi
  add_file "$T_RUN/etcd.env"
  up=()
  for d in $(ls -d "$T_RUN"/machines/m* 2>/dev/null | sort -V); do
    m=${d##*/}
    alive_file "$d/nspawn.pid" systemd-nspawn && alive_file "$d/pid1" systemd && up+=("$m")
  done
  if [ ${#up[@]} -gt 0 ]; then
    add TESTENV_MACHINES "$(IFS=,; echo "${up[*]}")"
    add TESTENV_HOST_IP "$T_HOST_IP"
    for m in "${up[@]}"; do
      add "TESTENV_${m^^}_IP" "$(m_ip "$m")"
      add "TESTENV_${m^^}_BUS" "unix:path=$(m_bus "$m")"
    done
    add_file "$T_RUN/etcd-machines.env"
    own=()
    for m in "${up[@]}"; do
      [ -L "$(m_disk "$m")/upper/etc/systemd/system/multi-user.target.wants/flotilla-dockerd.service" ] && own+=("$m")
    done
    if [ ${#own[@]} -gt 0 ]; then add TESTENV_MACHINE_DOCKER "$(IFS=,; echo "${own[*]}")"; fi
  fi
fi

if [ "${1:-}" = --json ]; then
  out="{"
  for i in "${!keys[@]}"; do
    v=${vals[$i]//\\/\\\\}; v=${v//\"/\\\"}
    [ "$i" = 0 ] || out+=","
    out+="\"${keys[$i]}\":\"$v\""
  done
  echo "$out}"
else
  for i in "${!keys[@]}"; do
    printf "export %s='%s'\n" "${keys[$i]}" "${vals[$i]//\'/\'\\\'\'}"
  done
fi
