/**
 * The operator's etcd layout on the test machines, and back. The runbooks are written for machines
 * set up like a VM with flotilla's package and Debian's etcd-server: etcd as `etcd-member.service`
 * (systemd/etcd-member.service) reading `/etc/flotilla/etcd-member.env`, `etcd`/`etcdctl` in
 * /usr/bin, the package in /usr/lib/flotilla, `coreos-cloudinit` on PATH. test/env runs each
 * machine's member as `flotilla-etcd.service` instead (test/env/etcd.sh), with the binaries in
 * /usr/local/bin and the project at /project.
 *
 * - `packagedPaths`: the paths the package and etcd-server would have put there.
 * - `toEtcdMember`: each machine's member becomes `etcd-member.service` on its own data (same
 *   name, URLs and data directory; etcd ignores the ETCD_INITIAL_* settings once the data exists),
 *   one machine at a time, so the cluster keeps its quorum throughout.
 * - `backToTestenv`: the reverse, on whatever data the page left (also a restored cluster: same
 *   names and URLs). When the members do not become healthy (a page failed half-way), the
 *   machines' etcd is rebuilt empty with test/env/etcd.sh and the agents set up again
 *   (`freshCluster`), so the next page starts from a whole cluster.
 */
import {
  allMachines,
  etcdMemberHealthy,
  freshCluster,
  inMachineOk,
  run,
  waitFor,
} from '../support/cluster.js';
import { envDir, machineIp, machineProject } from '../support/testbed.js';

/** Where test/env's member keeps its data; the etcd-member.env written here points there too. */
const DATA_DIR = '/var/lib/flotilla-etcd';
const LINKS = [
  ['/usr/local/bin/etcd', '/usr/bin/etcd'],
  ['/usr/local/bin/etcdctl', '/usr/bin/etcdctl'],
  [machineProject, '/usr/lib/flotilla'],
  [`${machineProject}/bin/flotilla`, '/usr/local/bin/coreos-cloudinit'],
].flat();

/** One bash script inside m, its arguments as $1...; every machine round trip costs ~0.5 s. */
async function script(m: string, body: string, ...args: string[]): Promise<void> {
  await inMachineOk(m, 'bash', '-c', `set -euo pipefail\n${body}`, 'bash', ...args);
}

const LINK = 'while [ $# -ge 2 ]; do ln -sfn "$1" "$2"; shift 2; done';
const UNLINK = 'while [ $# -ge 2 ]; do rm -f "$2"; shift 2; done';
/** etcd-member.service from the package's copy, where `flotilla install` puts units. */
const UNIT =
  'install -m 644 /usr/lib/flotilla/systemd/etcd-member.service /etc/systemd/system/etcd-member.service\n' +
  'systemctl daemon-reload';

export async function packagedPaths(m: string, withEtcdMemberUnit = false): Promise<void> {
  await script(m, withEtcdMemberUnit ? `${LINK}\n${UNIT}` : LINK, ...LINKS);
}

export async function removePackagedPaths(m: string): Promise<void> {
  await script(m, UNLINK, ...LINKS);
}

const healthy = async (ms: readonly string[]) =>
  (await Promise.all(ms.map(etcdMemberHealthy))).every(Boolean);

function memberEnv(m: string, ms: readonly string[]): string {
  const ip = machineIp(m);
  const cluster = ms.map((x) => `${x}=http://${machineIp(x)}:2380`).join(',');
  return [
    `ETCD_NAME=${m}`,
    `ETCD_DATA_DIR=${DATA_DIR}`,
    `ETCD_LISTEN_CLIENT_URLS=http://${ip}:2379,http://127.0.0.1:2379`,
    `ETCD_ADVERTISE_CLIENT_URLS=http://${ip}:2379`,
    `ETCD_LISTEN_PEER_URLS=http://${ip}:2380`,
    `ETCD_INITIAL_ADVERTISE_PEER_URLS=http://${ip}:2380`,
    `ETCD_INITIAL_CLUSTER=${cluster}`,
    'ETCD_INITIAL_CLUSTER_STATE=new',
    'ETCD_INITIAL_CLUSTER_TOKEN=flotilla-testenv',
    'ETCD_ENABLE_V2=true',
    '',
  ].join('\n');
}

export async function toEtcdMember(ms: readonly string[] = allMachines): Promise<void> {
  for (const m of ms) {
    // Type=notify: `enable --now` returns once the member is back in the cluster (the other two
    // members hold the quorum meanwhile).
    await script(
      m,
      `env=$1; shift\n${LINK}\n${UNIT}\nmkdir -p /etc/flotilla\nprintf %s "$env" > /etc/flotilla/etcd-member.env\n` +
        'systemctl disable --quiet --now flotilla-etcd\nsystemctl enable --quiet --now etcd-member',
      memberEnv(m, ms),
      ...LINKS,
    );
  }
  await waitFor('every etcd-member healthy', () => healthy(ms), 60_000, 300);
}

export async function backToTestenv(ms: readonly string[] = allMachines): Promise<void> {
  for (const m of ms) {
    await script(
      m,
      'systemctl disable --quiet --now etcd-member || true\n' +
        'rm -f /etc/systemd/system/etcd-member.service /etc/flotilla/etcd-member.env\n' +
        'systemctl daemon-reload\nsystemctl reset-failed flotilla-etcd || true\n' +
        `systemctl enable --quiet --now flotilla-etcd\n${UNLINK}`,
      ...LINKS,
    );
  }
  try {
    await waitFor('every etcd member healthy again', () => healthy(allMachines), 30_000, 300);
    return;
  } catch (err) {
    console.log(`[runbook] ${(err as Error).message}: rebuilding the machines' etcd (test/env/etcd.sh)`);
  }
  await rebuildEtcd();
}

/** The machines' etcd made again, empty (test/env/etcd.sh), and the agents set up on it. */
export async function rebuildEtcd(): Promise<void> {
  for (const args of [
    ['down', '--machines'],
    ['up', '--machines'],
  ]) {
    const r = await run('bash', [`${envDir}etcd.sh`, ...args], 120_000);
    if (r.code !== 0) throw new Error(`etcd.sh ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  }
  await freshCluster();
}
