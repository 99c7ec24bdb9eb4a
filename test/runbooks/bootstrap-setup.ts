/**
 * bootstrap-cluster.md starts from fresh machines with flotilla's package: no etcd member, the
 * agent installed but stopped, no cluster settings. `freshMachines` makes that out of the running
 * test cluster; `backToCluster` puts test/env's cluster back afterwards (whatever the page got to).
 *
 * The package's flotilla.socket is installed too (as the .deb and `flotilla install` do):
 * flotilla.service's `Also=flotilla.socket` makes `systemctl enable flotilla` fail without it, and
 * test/env's own agents run without it.
 *
 * What stays from test/env, because it is the test bed and not the cluster's configuration: the
 * machines' host names and /etc/hosts, and the agent's unit with its /etc/flotilla/flotilla.env
 * (agent_ttl 3s, its units directory, the peer API's TLS files). The keys the cloud-config sets
 * (etcd_servers, public_ip, metadata) are taken out of that file, so the agent runs on what
 * cloud-config wrote into flotilla.conf.
 */
import { allMachines, clusterSh, freshCluster, inMachineOk, run } from '../support/cluster.js';
import { envDir } from '../support/testbed.js';
import { packagedPaths, removePackagedPaths } from './etcd-layout.js';

async function etcdSh(...args: string[]): Promise<void> {
  const r = await run('bash', [`${envDir}etcd.sh`, ...args], 120_000);
  if (r.code !== 0) throw new Error(`etcd.sh ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
}

/** What cloud-config writes on these machines (the page's files and units), removed again. */
const WRITTEN = [
  '/etc/flotilla/etcd-member.env',
  '/etc/flotilla/flotilla.conf',
  '/etc/flotilla/update.conf',
  '/etc/sysctl.d/90-flotilla.conf',
  '/etc/systemd/system/etcd-member.service',
  '/etc/systemd/system/flotilla.socket',
  '/etc/systemd/system/etcd-snapshot.service',
  '/etc/systemd/system/etcd-snapshot.timer',
  '/var/lib/etcd-member',
  '/var/lib/coreos-install',
  '/var/lib/coreos-cloudinit',
];

export async function freshMachines(): Promise<void> {
  await clusterSh('wipe');
  await etcdSh('down', '--machines');
  await Promise.all(
    allMachines.map(async (m) => {
      await packagedPaths(m, true);
      await inMachineOk(
        m,
        'bash',
        '-c',
        'set -euo pipefail\nsystemctl disable --quiet flotilla\n' +
          'install -m 644 /usr/lib/flotilla/systemd/flotilla.socket /etc/systemd/system/flotilla.socket\n' +
          'systemctl daemon-reload\n' +
          "sed -i -E '/^FLOTILLA_(ETCD_SERVERS|PUBLIC_IP|METADATA)=/d' /etc/flotilla/flotilla.env\n" +
          'rm -f /etc/flotilla/flotilla.conf /etc/flotilla/update.conf /etc/flotilla/etcd-member.env',
      );
    }),
  );
}

export async function backToCluster(): Promise<void> {
  await Promise.all(
    allMachines.map(async (m) => {
      await inMachineOk(
        m,
        'bash',
        '-c',
        'systemctl disable --quiet --now flotilla flotilla.socket etcd-member etcd-snapshot.timer\n' +
          'rm -rf "$@"\nuserdel -r core 2>/dev/null\n' +
          "sed -i '/^COREOS_PRIVATE_IPV4=/d' /etc/environment\nsystemctl daemon-reload",
        'bash',
        ...WRITTEN,
      );
      await removePackagedPaths(m);
    }),
  );
  await etcdSh('up', '--machines');
  await freshCluster();
}
