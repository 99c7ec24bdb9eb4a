/**
 * The dashboard in a real Chromium (Debian's, headless, driven by playwright-core; no browser is
 * downloaded), in front of the agent's real API (ApiServer on a unix socket over an embedded
 * registry) on loopback: login with the URL, a bad token refused, a viewer's stop refused, a unit
 * appearing and changing in the table live (no reload), and axe-core's serious/critical check.
 *
 * Bad input: a bad unit in the form gets the API's error with its lines marked, an oversized paste
 * is refused, an expired session goes back to login with the half-typed form kept.
 * The 3-machine cases (start → active, journal, power cut, terminal) are in dashboard-cluster.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../src/dashboard/auth.js';
import { Dashboard } from '../../src/dashboard/server.js';
import { call, startAgent, type Agent } from '../unit/api/harness.js';

const CHROMIUM = '/usr/bin/chromium';
const root = fileURLToPath(new URL('../../', import.meta.url));
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.TESTENV_REQUIRED === '1')
  throw new Error(
    '[testenv] /usr/bin/chromium is missing (apt-get install chromium); TESTENV_REQUIRED=1 forbids skipping',
  );
if (!haveChromium) console.warn('[testenv] skipping the dashboard browser test: no /usr/bin/chromium');

const silent = { info() {}, warn() {}, error() {}, debug() {} } as never;

/** One browser per test (the hygiene check wants no child left after a test); closed in finally. */
async function withBrowser(fn: (b: Browser) => Promise<void>): Promise<void> {
  // launch() gives every run a fresh temporary profile (--user-data-dir), removed at close.
  const browser = await chromium.launch({
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
    ],
  });
  try {
    await fn(browser);
  } finally {
    await browser.close();
  }
}

describe.skipIf(!haveChromium)('dashboard in Chromium', () => {
  let agent: Agent;
  let dash: Dashboard;
  let base: string;

  beforeAll(async () => {
    // The assets the agent serves: built as `npm run build` does.
    execFileSync(
      process.execPath,
      [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--config', 'ui/dashboard/vite.config.mjs'],
      {
        cwd: root,
        stdio: 'pipe',
      },
    );
    agent = await startAgent();
    dash = new Dashboard();
    await dash.start({
      config: {
        dashboardListen: '127.0.0.1:0',
        dashboardTerminal: false,
        socketPath: agent.socketPath,
        dataDir: agent.dir,
      },
      log: silent,
      machineId: 'm',
      signal: new AbortController().signal,
    });
    base = `http://127.0.0.1:${dash.port()}`;
  }, 120_000);
  afterAll(async () => {
    await dash?.stop();
    await agent?.close();
  });

  it('refuses a bad token', async () => {
    await withBrowser(async (browser) => {
      const page = await browser.newPage();
      await page.goto(`${base}/ui/login#token=${'A'.repeat(43)}`);
      await expect
        .poll(() => page.locator('[role=alert]').textContent(), { timeout: 5000 })
        .toMatch(/invalid, used or expired/);
      await page.close();
    });
  });

  it("logs a viewer in with the URL and refuses the viewer's stop", async () => {
    await withBrowser(async (browser) => {
      await call(agent.target, 'PUT', '/fleet/v1/units/dash-v.service', {
        desiredState: 'inactive',
        options: [{ section: 'Service', name: 'ExecStart', value: '/bin/true' }],
      });
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(`${base}/ui/login#token=${issueToken(agent.dir, 'viewer', 60)}`);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      expect(page.url()).not.toContain('token=');
      await page.goto(`${base}/ui/#/unit/dash-v.service`);
      await expect.poll(() => page.getByRole('button', { name: 'Stop' }).isDisabled()).toBe(true);
      // The button is only a hint: the server refuses the change itself.
      const status = await page.evaluate(async () => {
        const s = (await (await fetch('/ui/session')).json()) as { csrf: string };
        const r = await fetch('/ui/api/fleet/v1/units/dash-v.service', {
          method: 'PUT',
          headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf },
          body: JSON.stringify({ desiredState: 'launched' }),
        });
        return r.status;
      });
      expect(status).toBe(403);
      await ctx.close();
    });
  });

  it('shows units live: created and changed elsewhere, updated in the table without a reload; axe finds nothing serious', async () => {
    await withBrowser(async (browser) => {
      // bypassCSP only so that axe-core can be injected below; the app itself runs under the CSP.
      const ctx = await browser.newContext({ bypassCSP: true });
      const page = await ctx.newPage();
      await page.goto(`${base}/ui/login#token=${issueToken(agent.dir, 'operator', 60)}`);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page.getByRole('link', { name: 'Units' }).click();
      await page.getByRole('heading', { name: /^Units/ }).waitFor();
      await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
      const r = await call(agent.target, 'PUT', '/fleet/v1/units/dash-live.service', {
        desiredState: 'loaded',
        options: [{ section: 'Service', name: 'ExecStart', value: '/bin/true' }],
      });
      expect(r.status).toBe(201);
      const row = page.locator('tr[data-unit="dash-live.service"]');
      await row.waitFor({ timeout: 5000 });
      await expect.poll(() => row.locator('td').nth(2).textContent(), { timeout: 5000 }).toBe('loaded');
      // The operator starts it from the unit page; the table shows the new desired state.
      await row.getByRole('link').click();
      await page.getByRole('button', { name: 'Start' }).click();
      await page.getByRole('link', { name: 'Units' }).click();
      await expect.poll(() => row.locator('td').nth(2).textContent(), { timeout: 5000 }).toBe('launched');
      expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42); // no reload
      await page.addScriptTag({
        content: readFileSync(join(root, 'node_modules/axe-core/axe.min.js'), 'utf8'),
      });
      const bad = await page.evaluate(async () => {
        const res = await (
          globalThis as unknown as {
            axe: { run(): Promise<{ violations: { id: string; impact: string }[] }> };
          }
        ).axe.run();
        return res.violations
          .filter((v) => v.impact === 'serious' || v.impact === 'critical')
          .map((v) => v.id);
      });
      expect(bad).toEqual([]);
      await ctx.close();
    });
  });

  it("shows the API's error for a bad unit with its lines marked, and refuses an oversized paste", async () => {
    await withBrowser(async (browser) => {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(`${base}/ui/login#token=${issueToken(agent.dir, 'operator', 60)}`);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page.getByRole('link', { name: 'Submit' }).click();
      await page.getByLabel('Name').fill('dash-bad.service');
      await page
        .getByLabel('Unit file')
        .fill('[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineID=abc\nGlobal=true\n');
      await page.getByRole('button', { name: 'Submit and start' }).click();
      await expect
        .poll(() => page.locator('#submit-error').textContent(), { timeout: 5000 })
        .toBe('MachineID cannot be used with Global');
      const marked = page.locator('ol.listing li.bad');
      expect(await marked.count()).toBe(2);
      expect([
        await marked.nth(0).getAttribute('data-line'),
        await marked.nth(1).getAttribute('data-line'),
      ]).toEqual(['5', '6']);
      expect((await call(agent.target, 'GET', '/fleet/v1/units/dash-bad.service')).status).toBe(404);
      // A syntax error is named by its line before anything is sent.
      await page.getByLabel('Unit file').fill('[Service]\nExecStart=/bin/true\nnot a key value line\n');
      await page.getByRole('button', { name: 'Submit and start' }).click();
      await expect
        .poll(() => page.locator('#submit-error').textContent())
        .toBe('line 3: expected [Section] or Key=Value');
      expect(await page.locator('ol.listing li.bad').getAttribute('data-line')).toBe('3');
      // A paste that would make the file larger than 64 KiB is refused (and not inserted).
      const inserted = await page
        .getByLabel('Unit file')
        .evaluate((ta: { dispatchEvent(e: Event): boolean }) => {
          const g = globalThis as unknown as {
            DataTransfer: new () => { setData(type: string, v: string): void };
            ClipboardEvent: new (type: string, init: unknown) => Event;
          };
          const { DataTransfer, ClipboardEvent } = g;
          const dt = new DataTransfer();
          dt.setData('text/plain', 'x'.repeat(70 * 1024));
          return ta.dispatchEvent(
            new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }),
          );
        });
      expect(inserted).toBe(false); // default prevented
      await expect
        .poll(() => page.locator('#submit-error').textContent())
        .toMatch(/^paste refused: .* 64 KiB$/);
      await ctx.close();
    });
  });

  it('sends an expired session back to login and keeps the half-typed unit', async () => {
    await withBrowser(async (browser) => {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(`${base}/ui/login#token=${issueToken(agent.dir, 'operator', 60)}`);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page.getByRole('link', { name: 'Submit' }).click();
      await page.getByLabel('Name').fill('dash-draft.service');
      await page.getByLabel('Unit file').fill('[Service]\nExecStart=/bin/sleep 1000\n');
      // The session ends (expired or dropped by the server): the cookie is gone.
      await ctx.clearCookies();
      await page.getByRole('button', { name: 'Submit and start' }).click();
      await page.getByText('Your session ended').waitFor({ timeout: 5000 });
      expect((await call(agent.target, 'GET', '/fleet/v1/units/dash-draft.service')).status).toBe(404);
      await page.goto(`${base}/ui/login#token=${issueToken(agent.dir, 'operator', 60)}`);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page.getByRole('link', { name: 'Submit' }).click();
      expect(await page.getByLabel('Name').inputValue()).toBe('dash-draft.service');
      expect(await page.getByLabel('Unit file').inputValue()).toBe('[Service]\nExecStart=/bin/sleep 1000\n');
      await ctx.close();
    });
  });
});
