/**
 * RebootManager end to end against the embedded store, with a fake host (clock, boot ID, the
 * need-reboot marker, the reboot call): lock → drain → wait for the units → reboot → (new boot)
 * release; a drain that times out; the window keeping a reboot back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, type RebootConfig } from '../../../src/locksmith/config.js';
import { RebootLock } from '../../../src/locksmith/lock.js';
import { RebootManager, type RebootHost } from '../../../src/locksmith/manager.js';
import { parseWindow } from '../../../src/locksmith/window.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry } from '../../../src/registry/registry.js';
import { KEYS } from '../../../src/registry/types.js';
import { nullLogger } from '../../../src/lib/log.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

class FakeHost implements RebootHost {
  t = Date.UTC(2026, 11, 3, 4, 10); // Thursday 04:10 UTC
  boot = 'boot-1';
  need = true;
  reboots: number[] = [];
  clock = { now: () => this.t };
  bootId = () => this.boot;
  needReboot = () => this.need;
  reboot = () => {
    this.reboots.push(this.t);
    return Promise.resolve();
  };
}

async function setup(cfg: Partial<RebootConfig> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-lsm-'));
  const store = await EmbeddedKvStore.open({ dataDir: dir });
  cleanups.push(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const registry = new Registry(store);
  const presence = await store.grantLease(60);
  await registry.registerMachine({ id: 'm1', publicIP: '10.0.0.1', metadata: {}, version: 't' }, presence.id);
  const host = new FakeHost();
  const config: RebootConfig = { ...DEFAULTS, strategy: 'etcd-lock', drainTimeoutMs: 60_000, ...cfg };
  const start = async () => {
    const m = new RebootManager({ host, intervalMs: 3_600_000 });
    const ac = new AbortController();
    await m.start({ config, log: nullLogger, machineId: 'm1', registry, store, signal: ac.signal });
    cleanups.push(() => m.stop('leave'));
    return m;
  };
  return { store, registry, host, start, lock: new RebootLock(store, config.group) };
}

const flag = async (store: EmbeddedKvStore) =>
  (JSON.parse((await store.get(KEYS.machine('m1')))!.value) as { unschedulable?: boolean }).unschedulable ===
  true;

describe('RebootManager', () => {
  it('locks, drains, waits for the units to run elsewhere, reboots; after the reboot releases', async () => {
    const { store, registry, host, start, lock } = await setup();
    const other = await store.grantLease(60);
    await registry.registerMachine({ id: 'm2', publicIP: '10.0.0.2', metadata: {}, version: 't' }, other.id);
    await registry.createUnit('web.service', '[Service]\nExecStart=/bin/true\n', 'launched');
    await store.put(KEYS.schedule('web.service'), JSON.stringify({ name: 'web.service', machineID: 'm1' }));
    const m = await start();
    expect((await m.tick()).type).toBe('lock');
    expect((await lock.status()).holders).toEqual(['m1']);
    expect((await m.tick()).type).toBe('drain');
    expect(await flag(store)).toBe(true);
    expect(await m.tick()).toMatchObject({
      type: 'wait',
      reason: expect.stringMatching(/web\.service/) as unknown,
    });
    // The engine moves it; m2 reports it running.
    await store.put(KEYS.schedule('web.service'), JSON.stringify({ name: 'web.service', machineID: 'm2' }));
    expect((await m.tick()).type).toBe('wait'); // placed, not yet running there
    await registry.reportUnitState(
      {
        name: 'web.service',
        machineID: 'm2',
        hash: 'x',
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
      },
      other.id,
    );
    expect((await m.tick()).type).toBe('reboot');
    expect(host.reboots).toHaveLength(1);
    await m.stop('leave'); // the agent goes down with the machine; the lock stays
    expect((await lock.status()).holders).toEqual(['m1']);
    // The new boot.
    host.boot = 'boot-2';
    host.need = false;
    const after = await start();
    expect((await after.tick()).type).toBe('release');
    expect(await lock.status()).toMatchObject({ semaphore: 1, holders: [] });
    expect(await flag(store)).toBe(false);
    expect((await after.tick()).type).toBe('wait');
  });

  it('a reload to strategy off (SIGHUP re-reads update.conf) keeps a needed reboot back; group waits for a restart', async () => {
    const { start, host, lock } = await setup();
    const m = await start();
    const out = await m.reload({ ...DEFAULTS, strategy: 'off', group: 'other', drainTimeoutMs: 60_000 });
    expect(out).toEqual({ applied: ['strategy'], needRestart: ['group'] });
    for (let i = 0; i < 3; i++) expect((await m.tick()).type).toBe('wait');
    expect(host.reboots).toHaveLength(0);
    expect((await lock.status()).holders).toEqual([]);
    expect(m.status()).toMatchObject({ strategy: 'off' });
  });

  it('a second machine waits while the first holds the lock (max 1)', async () => {
    const { store, start, lock } = await setup();
    const l = await store.grantLease(60);
    await lock.lock('m9', l.id);
    const m = await start();
    expect(await m.tick()).toMatchObject({
      type: 'wait',
      reason: expect.stringMatching(/lock busy/) as unknown,
    });
    await lock.unlock('m9');
    expect((await m.tick()).type).toBe('lock');
  });

  it('a drain that does not finish reboots after the timeout (by the clock)', async () => {
    const { store, registry, host, start } = await setup({ strategy: 'reboot', drainTimeoutMs: 30_000 });
    await registry.createUnit('pin.service', '[Service]\nExecStart=/bin/true\n', 'launched');
    await store.put(KEYS.schedule('pin.service'), JSON.stringify({ name: 'pin.service', machineID: 'm1' }));
    const m = await start();
    expect((await m.tick()).type).toBe('drain');
    host.t += 29_000;
    expect((await m.tick()).type).toBe('wait');
    host.t += 1_000;
    expect(await m.tick()).toMatchObject({ type: 'reboot', timedOut: true });
    expect(host.reboots).toEqual([host.t]);
  });

  it('waits for the window (closed now), then goes once it opens', async () => {
    const { host, start } = await setup({
      strategy: 'reboot',
      zone: 'utc',
      window: parseWindow('Thu 05:00', '30m'),
    });
    const m = await start();
    expect(await m.tick()).toMatchObject({ type: 'wait', ms: 50 * 60_000 });
    host.t += 50 * 60_000;
    expect((await m.tick()).type).toBe('drain');
  });
});
