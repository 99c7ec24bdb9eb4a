/**
 * `node --import tsx scripts/dashboard-screenshots.ts [OUTDIR]` (default docs/dashboard): PNGs of
 * the dashboard's main pages, taken in Debian's Chromium (headless, playwright-core) in front of the
 * real API (ApiServer + FleetV1 + FlotillaV1 over an embedded registry in a temp dir), seeded with 3
 * machines, a dozen units in different states, service endpoints, and a machine that leaves while
 * the events page is open (so the timeline and the failover chart have something to show).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { FleetV1 } from '../src/api/fleet-v1.js';
import { FlotillaV1 } from '../src/api/flotilla-v1.js';
import { ApiServer } from '../src/api/server.js';
import { ServicesApi } from '../src/api/services.js';
import { issueToken } from '../src/dashboard/auth.js';
import { Dashboard } from '../src/dashboard/server.js';
import { ServicesView } from '../src/discovery/services-view.js';
import { ClusterView } from '../src/registry/cluster-view.js';
import { EmbeddedKvStore } from '../src/registry/embedded/index.js';
import { Registry } from '../src/registry/registry.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'docs/dashboard'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const MACHINES = ['1', '2', '3'].map((n) => ({
  id: `${n}a${n}b${n}c${n}d`.repeat(4),
  publicIP: `10.0.0.1${n}`,
  metadata: { name: `m${n}`, region: n === '3' ? 'eu-west' : 'eu-central' },
  version: '0.1.0',
}));

async function main(): Promise<void> {
  execFileSync(
    process.execPath,
    [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'ui/dashboard/vite.config.mjs'],
    {
      cwd: root,
      stdio: 'pipe',
    },
  );
  mkdirSync(out, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-shots-'));
  const store = await EmbeddedKvStore.open({ dataDir: join(dir, 'registry') });
  const registry = new Registry(store);
  const leases = await Promise.all(MACHINES.map(async () => (await store.grantLease(3600)).id));
  for (const [i, m] of MACHINES.entries()) await registry.registerMachine(m, leases[i]!);
  const guard = (await registry.acquireLeadership(MACHINES[0]!.id, leases[0]!))!;
  const units = [
    ['web@1.service', 0, 'active', 'running'],
    ['web@2.service', 1, 'active', 'running'],
    ['web@3.service', 2, 'active', 'running'],
    ['api.service', 0, 'active', 'running'],
    ['worker.service', 2, 'active', 'running'],
    ['cache.service', 1, 'active', 'running'],
    ['backup.service', 2, 'inactive', 'dead'],
    ['migrate.service', 0, 'failed', 'failed'],
    ['metrics.service', 1, 'activating', 'start'],
  ] as const;
  for (const [name, mi, active, sub] of units) {
    const job = await registry.createUnit(
      name,
      `[Unit]\nDescription=${name}\n\n[Service]\nExecStart=/usr/bin/${name.split(/[@.]/)[0]}\n`,
      'launched',
    );
    await registry.writeSchedule(guard, [{ name, machineID: MACHINES[mi]!.id }]);
    await registry.reportUnitState(
      {
        name,
        machineID: MACHINES[mi]!.id,
        hash: job.hash,
        loadState: 'loaded',
        activeState: active,
        subState: sub,
        jobState: 'launched',
      },
      leases[mi]!,
    );
  }
  await registry.createUnit(
    'gpu-job.service',
    '[Service]\nExecStart=/usr/bin/train\n\n[X-Fleet]\nMachineMetadata=gpu=true\n',
    'launched',
  );
  for (const [i, m] of MACHINES.entries())
    await registry.registerEndpoint(
      {
        service: 'web',
        machineID: m.id,
        ip: m.publicIP,
        port: 8080,
        container: `c${i}`.repeat(8),
        unit: `web@${i + 1}.service`,
        health: i === 2 ? 'starting' : 'healthy',
        registered: Date.now(),
      },
      leases[i]!,
    );
  const view = new ClusterView(registry);
  await view.start();
  const servicesView = new ServicesView(registry);
  await servicesView.start();
  const fleet = new FleetV1(registry);
  const flotilla = new FlotillaV1({
    machineID: MACHINES[0]!.id,
    view,
    status: () => ({ proxy: { state: 'disabled', reason: 'proxy_services is not set' } }),
  });
  const services = new ServicesApi(registry, servicesView);
  const api = new ApiServer([(r) => fleet.route(r), (r) => services.route(r), (r) => flotilla.route(r)]);
  const socketPath = join(dir, 'fleet.sock');
  await api.listen({ socketPath });
  const silent = { info() {}, warn() {}, error() {}, debug() {} } as never;
  const dash = new Dashboard();
  await dash.start({
    config: { dashboardListen: '127.0.0.1:0', dashboardTerminal: true, socketPath, dataDir: dir },
    log: silent,
    machineId: MACHINES[0]!.id,
    signal: new AbortController().signal,
  });
  const base = `http://127.0.0.1:${dash.port()}`;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
  try {
    for (const theme of ['light', 'dark'] as const) {
      const ctx = await browser.newContext({ viewport: { width: 1200, height: 760 }, colorScheme: theme });
      const page = await ctx.newPage();
      await page.goto(`${base}/ui/login#token=${issueToken(dir, 'operator', 600)}`);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      const shot = async (p: Page, name: string) => {
        await sleep(300);
        await p.screenshot({ path: join(out, `${name}.png`) });
        console.log(`${join(out, `${name}.png`)}`);
      };
      if (theme === 'dark') {
        await shot(page, 'overview-dark');
        await ctx.close();
        continue;
      }
      await shot(page, 'overview');
      await page.getByRole('link', { name: 'Units' }).click();
      await page.locator('tr[data-unit]').first().waitFor();
      await shot(page, 'units');
      await page.goto(`${base}/ui/#/machine/${MACHINES[1]!.id}`);
      await page.getByRole('heading', { name: /^Machine/ }).waitFor();
      await shot(page, 'machine');
      await page.getByRole('link', { name: 'Services' }).click();
      await page.locator('tr[data-service]').first().waitFor();
      await shot(page, 'services');
      await page.getByRole('link', { name: 'Submit' }).click();
      await page.getByLabel('Name').fill('db.service');
      await page
        .getByLabel('Unit file')
        .fill('[Service]\nExecStart=/usr/bin/postgres\n\n[X-Fleet]\nMachineID=1a1b1c1d\nGlobal=true\n');
      await page.getByRole('button', { name: 'Submit and start' }).click();
      await page.locator('#submit-error').waitFor();
      await shot(page, 'submit-error');
      // Events: m3 leaves (its lease is revoked); its units are placed on m1 a moment later.
      await page.getByRole('link', { name: 'Events' }).click();
      await page.getByRole('heading', { name: 'Events' }).waitFor();
      await sleep(5500); // a second sample for the chart
      await store.revokeLease(leases[2]!);
      await sleep(1200);
      const moved = units
        .filter(([, mi]) => mi === 2)
        .map(([name]) => ({ name, machineID: MACHINES[0]!.id }));
      await registry.writeSchedule(guard, moved);
      await registry.setDesiredState('backup.service', 'inactive');
      await sleep(5500);
      await shot(page, 'events');
      await ctx.close();
    }
  } finally {
    await browser.close();
    await dash.stop();
    await api.close();
    servicesView.stop();
    view.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
