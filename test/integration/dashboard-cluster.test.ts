/**
 * The dashboard in a real Chromium against the 3 test machines: a real agent (flotilla.service) in
 * each nspawn machine (test/env/cluster.sh), each serving its dashboard over TLS on its own address
 * with the cluster's test certificate. Chromium trusts m1's certificate by its SPKI pin
 * (--ignore-certificate-errors-spki-list: that one key only, not "ignore all errors").
 *
 *   - the login URL comes from `flotilla dashboard login-url` run inside m1;
 *   - the overview shows the 3 machines;
 *   - a unit submitted from the form goes active in the units table live (no reload);
 *   - a line the unit writes appears in the unit page's journal within 1 s (forwarded across
 *     agents when the unit runs elsewhere);
 *   - stop and destroy from the unit page;
 *   - power cut of the machine running a unit: the table shows it on another machine within 5 s of
 *     the CLI (`list-units` in m1) seeing it, and the events page has an event for it;
 *   - the terminal (dashboard_terminal=true) runs `hostname` on m2 and shows `m2` (m1's agent
 *     forwards the session to m2's over the peer API), and one on a machine that is down says so.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  allMachines,
  ctlOk,
  inMachineOk,
  listMachines,
  listUnits,
  putFile,
  sleep,
  uniq,
  useCluster,
  waitFor,
  waitForMembers,
} from '../support/cluster.js';
import { bootMachine, describeSystemd, machineIp, powerCut } from '../support/testbed.js';

const CHROMIUM = '/usr/bin/chromium';
const root = fileURLToPath(new URL('../../', import.meta.url));
const PORT = 54740; // not 54728 (peer API) nor 54730 (liveness)
const state = process.env.TESTENV_STATE ?? '/var/lib/flotilla-testenv';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.TESTENV_REQUIRED === '1')
  throw new Error('[testenv] /usr/bin/chromium is missing; TESTENV_REQUIRED=1 forbids skipping');

/** base64(sha256(SubjectPublicKeyInfo)) of a PEM certificate: Chromium's SPKI pin format. */
function spkiPin(pemPath: string): string {
  const der = new X509Certificate(readFileSync(pemPath)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

const CONF = (m: string) =>
  [
    `dashboard_listen=${machineIp(m)}:${PORT}`,
    'dashboard_certfile=/etc/flotilla/tls/agent.pem',
    'dashboard_keyfile=/etc/flotilla/tls/agent.key',
    'dashboard_terminal=true',
    '',
  ].join('\n');

/** A unit that prints whatever the test writes into its FIFO /tmp/<name>.say (no polling delay). */
const echoUnit = (name: string, xfleet = '') =>
  [
    '[Unit]',
    'Description=dashboard test echo',
    '[Service]',
    `ExecStart=/bin/sh -c 'rm -f /tmp/${name}.say; mkfifo /tmp/${name}.say; while :; do cat /tmp/${name}.say; done'`,
    xfleet,
  ].join('\n');

describeSystemd.skipIf(!haveChromium)('dashboard on the 3 test machines', () => {
  const cluster = useCluster();
  const cli = allMachines[0]!;
  let browser: Browser;
  let pin = '';
  let base: string;

  beforeAll(async () => {
    execFileSync(
      process.execPath,
      [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'ui/dashboard/vite.config.mjs'],
      { cwd: root, stdio: 'pipe' },
    );
    // Every agent serves its dashboard (the terminal on), then is restarted with it.
    await Promise.all(
      allMachines.map(async (m) => {
        await putFile(m, '/etc/flotilla/flotilla.conf', CONF(m));
        await inMachineOk(m, 'systemctl', 'restart', 'flotilla');
      }),
    );
    await waitForMembers(cli, cluster.map(), allMachines);
    base = `https://${machineIp(cli)}:${PORT}`;
    pin = spkiPin(`${state}/cluster-pki/${cli}.pem`);
  }, 180_000);
  afterAll(async () => {
    await Promise.all(
      allMachines.map((m) => inMachineOk(m, 'rm', '-f', '/etc/flotilla/flotilla.conf').catch(() => '')),
    );
  }, 60_000);

  /** One Chromium per test (the hygiene check wants no child left after a test). */
  async function withBrowser(fn: () => Promise<void>): Promise<void> {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--ignore-certificate-errors-spki-list=${pin}`,
      ],
    });
    try {
      await fn();
    } finally {
      await browser.close();
    }
  }

  async function loggedIn(): Promise<Page> {
    const url = (await ctlOk(cli, 'dashboard', 'login-url', '--role=operator')).trim();
    expect(url.startsWith(`${base}/ui/login#token=`), url).toBe(true);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.on('dialog', (d) => void d.accept());
    await page.goto(url);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    return page;
  }

  const row = (page: Page, unit: string) => page.locator(`tr[data-unit="${unit}"]`);
  const cell = (page: Page, unit: string, col: string) => row(page, unit).locator(`td[data-col=${col}]`);

  it('shows 3 machines; a unit from the form goes active live; its journal line within 1 s; stop; destroy', () =>
    withBrowser(async () => {
      const page = await loggedIn();
      await expect.poll(() => page.locator('tr[data-machine]').count(), { timeout: 10_000 }).toBe(3);
      for (const m of allMachines) await page.locator(`tr[data-machine] >> text=${machineIp(m)}`).waitFor();

      // The machine page: an operator sets metadata (PATCH /fleet/v1/machines); the CLI sees it.
      const m3 = allMachines[2]!;
      const m3id = cluster.map().id(m3);
      await page.locator(`tr[data-machine="${m3id}"] a`).click();
      await page.getByLabel('Key').fill('dash');
      await page.getByLabel('Value').fill('yes');
      await page.getByRole('button', { name: 'Set' }).click();
      await page.locator('#metadata tr[data-key=dash]', { hasText: 'yes' }).waitFor({ timeout: 10_000 });
      await expect
        .poll(async () => (await listMachines(cli)).find((r) => r.id === m3id)?.metadata.dash, {
          timeout: 10_000,
        })
        .toBe('yes');
      await page.getByRole('button', { name: 'Remove dash' }).click();
      await expect
        .poll(() => page.locator('#metadata tr[data-key=dash]').count(), { timeout: 10_000 })
        .toBe(0);
      await page.getByRole('link', { name: 'Overview' }).click();

      const name = `${uniq('dash')}.service`;
      cluster.created.push(name);
      await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 7));
      await page.getByRole('link', { name: 'Submit' }).click();
      await page.getByLabel('Name').fill(name);
      await page.getByLabel('Unit file').fill(echoUnit(name));
      await page.getByRole('button', { name: 'Submit and start' }).click();
      await page.getByRole('heading', { name }).waitFor();
      await page.getByRole('link', { name: 'Units' }).click();
      await expect
        .poll(() => cell(page, name, 'active').textContent(), { timeout: 15_000 })
        .toBe('active/running');
      expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(7);

      // The journal: the line is written on whichever machine hosts the unit.
      const host = (await listUnits(cli)).find((r) => r.unit === name && r.active === 'active');
      const hostName = cluster.map().name(host!.machineID);
      await row(page, name).getByRole('link', { name }).click();
      await page.locator('#journal').waitFor();
      await sleep(500); // the follow stream is open (its first lines are in)
      const line = `hello-from-${name}`;
      await putFile(hostName, `/tmp/${name}.say`, `${line}\n`);
      const t0 = performance.now();
      await page.locator('#journal', { hasText: line }).waitFor({ timeout: 5000 });
      const ms = performance.now() - t0;
      console.log(
        `[dashboard] journal line on ${hostName} seen in the browser (via ${cli}) after ${ms.toFixed(0)} ms`,
      );
      expect(ms).toBeLessThan(1000);

      await page.getByRole('button', { name: 'Stop' }).click();
      await expect
        .poll(async () => (await listUnits(cli)).some((r) => r.unit === name && r.active === 'active'), {
          timeout: 15_000,
        })
        .toBe(false);
      await page.getByRole('button', { name: 'Destroy' }).click();
      await page.getByRole('heading', { name: /^Units/ }).waitFor();
      await expect.poll(() => row(page, name).count(), { timeout: 10_000 }).toBe(0);
      expect((await ctlOk(cli, 'list-unit-files', '--no-legend')).includes(name)).toBe(false);
      await page.context().close();
    }));

  it('power cut: the table shows the unit on another machine within 5 s of the CLI, with an event', () =>
    withBrowser(async () => {
      const page = await loggedIn();
      const name = `${uniq('dash-fo')}.service`;
      cluster.created.push(name);
      // Never on m1 (the CLI's and the browser's machine): it runs on m2 or m3.
      const others = allMachines.filter((m) => m !== cli);
      await putFile(
        cli,
        `/tmp/${name}`,
        echoUnit(name, `[X-Fleet]\n${others.map((m) => `MachineMetadata=name=${m}`).join('\n')}`),
      );
      await ctlOk(cli, 'start', `/tmp/${name}`);
      const first = await waitFor(
        `${name} active`,
        async () => (await listUnits(cli)).find((r) => r.unit === name && r.active === 'active'),
        20_000,
      );
      await page.getByRole('link', { name: 'Units' }).click();
      await cell(page, name, 'machine').filter({ hasText: first.ip }).waitFor({ timeout: 10_000 });
      const victim = cluster.map().name(first.machineID);
      const survivor = others.find((m) => m !== victim)!;

      powerCut(victim);
      const t0 = performance.now();
      const [cliMs, dashMs] = await Promise.all([
        waitFor(
          'the CLI sees it on the survivor',
          async () =>
            (await listUnits(cli)).some(
              (r) => r.unit === name && r.active === 'active' && r.ip === machineIp(survivor),
            )
              ? performance.now() - t0
              : undefined,
          60_000,
          100,
        ),
        waitFor(
          'the dashboard shows it on the survivor',
          async () => {
            const m = await cell(page, name, 'machine').textContent();
            const a = await cell(page, name, 'active').textContent();
            return m?.includes(machineIp(survivor)) && a === 'active/running'
              ? performance.now() - t0
              : undefined;
          },
          60_000,
          50,
        ),
      ]);
      console.log(
        `[dashboard] power cut of ${victim}: CLI saw ${name} on ${survivor} after ${cliMs.toFixed(0)} ms, the dashboard after ${dashMs.toFixed(0)} ms`,
      );
      expect(dashMs - cliMs).toBeLessThan(5000);
      await page.getByRole('link', { name: 'Events' }).click();
      await page
        .locator(`#timeline li[data-kind=schedule][data-name="${name}"]`)
        .first()
        .waitFor({ timeout: 5000 });
      await page.context().close();
      bootMachine(victim);
    }));

  it("terminal: `hostname` on m2 shows m2 (forwarded from m1), audited in m2's journal; a machine that is down says so", () =>
    withBrowser(async () => {
      const page = await loggedIn();
      const m2 = allMachines[1]!;
      const m3 = allMachines[2]!;
      const since = (await inMachineOk(m2, 'date', '+%Y-%m-%d %H:%M:%S')).trim();
      await page.goto(`${base}/ui/#/terminal/${cluster.map().id(m2)}`);
      await page.locator('#term-state', { hasText: 'open' }).waitFor({ timeout: 10_000 });
      await page.getByLabel('Command').fill('hostname');
      await page.getByRole('button', { name: 'Send' }).click();
      await expect
        .poll(async () => ((await page.locator('#terminal').textContent()) ?? '').split('\n').includes(m2), {
          timeout: 10_000,
        })
        .toBe(true);
      await page.getByLabel('Command').fill('exit');
      await page.getByRole('button', { name: 'Send' }).click();
      await page.locator('#term-state', { hasText: 'closed' }).waitFor({ timeout: 10_000 });
      const audit = await waitFor(
        'the audit lines in m2',
        async () => {
          const j = await inMachineOk(
            m2,
            'journalctl',
            '-u',
            'flotilla',
            '--no-pager',
            '-o',
            'cat',
            '--since',
            since,
          );
          const lines = j.split('\n').filter((l) => l.includes('dashboard terminal: session'));
          return lines.length >= 2 ? lines : undefined;
        },
        10_000,
      );
      expect(audit[0]).toContain('session start');
      expect(audit[0]).toContain(cluster.map().id(m2));
      expect(audit[0]).toContain(cluster.map().id(cli)); // forwarded from m1
      expect(audit[1]).toContain('session end');

      powerCut(m3);
      try {
        await page.goto(`${base}/ui/#/terminal/${cluster.map().id(m3)}`);
        await page
          .locator('#term-state', { hasText: /unreachable|down or not in the cluster/ })
          .waitFor({ timeout: 15_000 });
        console.log(
          `[dashboard] terminal on ${m3} while down: ${await page.locator('#term-state').textContent()}`,
        );
      } finally {
        bootMachine(m3);
      }
      await page.context().close();
    }));
});
