/**
 * docs/runbooks/*.md, run: each page's ```sh blocks (test/runbooks/extract.ts) run in order, each in
 * the machine its marker names (test/env/exec.sh mK bash -c 'set -euo pipefail; …'), against the
 * real cluster of test/env (agents as systemd services, etcd members in the machines). A block
 * marked expect=fail must exit non-zero; every other one must exit 0, and the checks written into
 * the pages (grep -q, waits with a bound) are part of the page. So a page cannot drift from what
 * flotilla does.
 *
 * Some pages need a starting point an operator would already have (fleet's keys in etcd for the
 * migration, a machine on the embedded registry for its backup): `SETUP` makes it, `TEARDOWN` puts
 * the cluster back for the next page.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  allMachines,
  clusterSh,
  destroyUnits,
  freshCluster,
  inMachine,
  inMachineOk,
  restoreMachines,
  run,
  type ClusterMap,
} from '../support/cluster.js';
import { describeSystemd, envDir, machineIp } from '../support/testbed.js';
import { extractFile, type Step } from '../runbooks/extract.js';
import { tlsRotationSetup } from '../runbooks/tls-rotation-setup.js';
import { backToCluster, freshMachines } from '../runbooks/bootstrap-setup.js';
import { backToTestenv, packagedPaths, toEtcdMember } from '../runbooks/etcd-layout.js';

const DOCS = fileURLToPath(new URL('../../docs/runbooks/', import.meta.url));
const pages = readdirSync(DOCS)
  .filter((f) => f.endsWith('.md') && f !== 'README.md')
  .sort();

/** Units the pages create, destroyed after each page whatever happened. */
const PAGE_UNITS: Record<string, string[]> = {
  'debug-unit.md': ['rb-nowhere.service', 'rb-broken.service'],
  'drain-machine.md': ['rb-pinned.service', 'rb-any.service'],
  'etcd-quorum-loss.md': [
    'rb-quorum@1.service',
    'rb-quorum@2.service',
    'rb-quorum@3.service',
    'rb-quorum@.service',
    'rb-quorum-after.service',
  ],
  'migrate-from-fleet.md': ['hello.service', 'web@.service', 'web@1.service', 'batch.service'],
  'registry-backup.md': ['rb-keep.service'],
  'remove-add-machine.md': ['rb-stay.service'],
  'tls-rotation.md': ['rb-tls.service'],
};

async function v2(method: 'PUT' | 'DELETE', key: string, value?: string): Promise<void> {
  const base = `http://${machineIp('m1')}:2379/v2/keys${key}`;
  const r = await fetch(method === 'DELETE' ? `${base}?recursive=true` : base, {
    method,
    ...(value !== undefined
      ? {
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ value }).toString(),
        }
      : {}),
  });
  if (r.status >= 300 && !(method === 'DELETE' && r.status === 404))
    throw new Error(`etcd v2 ${method} ${key}: ${r.status} ${await r.text()}`);
}

/** fleet's keys for a small cluster (fleet.md §3.3): what `migrate-from-fleet.md` starts from. */
async function writeFleetKeys(): Promise<void> {
  const { createHash } = await import('node:crypto');
  const P = '/_coreos.com/fleet/';
  const m2 = (await inMachineOk('m2', 'cat', '/etc/machine-id')).trim();
  const job = async (name: string, body: string, target?: string) => {
    const h = createHash('sha1').update(body, 'utf8').digest('hex');
    await v2('PUT', `${P}unit/${h}`, JSON.stringify({ Raw: body }));
    await v2(
      'PUT',
      `${P}job/${name}/object`,
      JSON.stringify({ Name: name, UnitHash: [...Buffer.from(h, 'hex')] }),
    );
    if (target) await v2('PUT', `${P}job/${name}/target-state`, target);
  };
  await job(
    'hello.service',
    '[Unit]\nDescription=Hello from fleet\n\n[Service]\nExecStart=/bin/sleep infinity\n',
    'launched',
  );
  await job(
    'web@.service',
    '[Unit]\nDescription=Web %i\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nMachineMetadata=role=web\n',
    'inactive',
  );
  await job(
    'web@1.service',
    '[Unit]\nDescription=Web %i\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nMachineMetadata=role=web\n',
    'launched',
  );
  await job('batch.service', '[Service]\nExecStart=/bin/true\n', 'loaded');
  await v2('PUT', `${P}job/hello.service/target`, m2);
  await v2('PUT', `${P}machines/${m2}/metadata/role`, 'web');
  await v2(
    'PUT',
    `${P}machines/${m2}/object`,
    JSON.stringify({ ID: m2, PublicIP: machineIp('m2'), Metadata: { name: 'm2' }, Version: '1.0.0' }),
  );
}

const SETUP: Record<string, () => Promise<void>> = {
  'migrate-from-fleet.md': writeFleetKeys,
  // A single machine on the embedded registry: m3's agent without etcd_servers.
  'registry-backup.md': async () => {
    await clusterSh('up', '--embedded', 'm3');
  },
};

SETUP['replace-etcd-member.md'] = () => packagedPaths('m3');
// New certificates from a new CA in /root/tls-new/ of each machine, as the operator's CA makes them.
SETUP['tls-rotation.md'] = () => tlsRotationSetup(allMachines);
SETUP['remove-add-machine.md'] = () => packagedPaths('m3');
// Fresh machines: no etcd member, the agent installed but stopped (test/runbooks/bootstrap-setup.ts).
SETUP['bootstrap-cluster.md'] = freshMachines;
// Every member as etcd-member.service, the layout the page is written for.
SETUP['etcd-quorum-loss.md'] = () => toEtcdMember(allMachines);

const TEARDOWN: Record<string, () => Promise<void>> = {
  'replace-etcd-member.md': () => backToTestenv(['m3']),
  'bootstrap-cluster.md': backToCluster,
  'etcd-quorum-loss.md': async () => {
    await backToTestenv(allMachines);
    // After a failure half-way the page's own clean-up did not run.
    await destroyUnits(allMachines, PAGE_UNITS['etcd-quorum-loss.md']!);
    for (const m of allMachines)
      await inMachine(
        m,
        'rm',
        '-rf',
        '/var/lib/flotilla-etcd.before-restore',
        '/var/backups/etcd-restore.db',
      );
  },
  'remove-add-machine.md': async () => {
    await backToTestenv(['m3']);
    await inMachineOk('m3', 'systemctl', 'enable', '--now', 'flotilla');
  },
  'migrate-from-fleet.md': async () => {
    await v2('DELETE', '/_coreos.com');
    // The metadata the migration carried over (role=web on m2) is removed again.
    const m2 = (await inMachineOk('m2', 'cat', '/etc/machine-id')).trim();
    await inMachineOk(
      'm1',
      'curl',
      '-sf',
      '--unix-socket',
      '/var/run/fleet.sock',
      '-X',
      'PATCH',
      '-H',
      'content-type: application/json',
      '-d',
      JSON.stringify([{ op: 'remove', path: `/${m2}/metadata/role` }]),
      'http://localhost/fleet/v1/machines',
    );
  },
  // The agents get test/env's certificates back (cluster.sh up installs them and restarts the agents).
  'tls-rotation.md': async () => {
    for (const m of allMachines) await inMachineOk(m, 'rm', '-rf', '/root/tls-new', '/root/tls-old');
    await clusterSh('up');
  },
  'registry-backup.md': async () => {
    await inMachineOk('m3', 'rm', '-rf', '/var/lib/flotilla/registry', '/var/backups/flotilla-registry.bak');
    await clusterSh('up', 'm3');
  },
};

async function runStep(page: string, s: Step): Promise<void> {
  const t0 = performance.now();
  const r = await run(
    'bash',
    [`${envDir}exec.sh`, s.on, 'bash', '-c', `set -euo pipefail\n${s.script}`],
    s.timeoutS * 1000,
  );
  const ms = (performance.now() - t0).toFixed(0);
  console.log(`[runbook] ${page}:${s.line} on ${s.on}: exit ${r.code} in ${ms} ms\n${r.stdout}${r.stderr}`);
  const what = `${page}:${s.line} (on ${s.on}) exited ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
  if (s.expect === 'fail') expect(r.code, what).not.toBe(0);
  else expect(r.code, what).toBe(0);
}

describeSystemd('docs/runbooks: every page runs, step by step, on the test machines', () => {
  let map: ClusterMap;
  beforeAll(async () => {
    map = await freshCluster();
    expect(map).toBeDefined();
  }, 240_000);
  afterAll(async () => {
    await restoreMachines();
  }, 120_000);

  it('has pages, and every ```sh block on them is marked to run', () => {
    expect(pages.length).toBeGreaterThan(0);
    for (const p of pages) expect(extractFile(`${DOCS}${p}`).length, p).toBeGreaterThan(0);
  });

  for (const page of pages) {
    it(
      page,
      async () => {
        const steps = extractFile(`${DOCS}${page}`);
        let t0 = performance.now();
        await SETUP[page]?.();
        const setupMs = performance.now() - t0;
        t0 = performance.now();
        try {
          for (const s of steps) await runStep(page, s);
        } finally {
          const stepsMs = performance.now() - t0;
          t0 = performance.now();
          await destroyUnits(allMachines, PAGE_UNITS[page] ?? []);
          await TEARDOWN[page]?.();
          await restoreMachines();
          const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
          console.log(
            `[runbook] ${page}: setup ${s(setupMs)}, steps ${s(stepsMs)}, teardown ${s(performance.now() - t0)}`,
          );
        }
      },
      600_000,
    );
  }
});
