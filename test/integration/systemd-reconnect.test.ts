/**
 * The bus going away under a running manager, on real systemd 252 (from the host; the last machine,
 * because restarting its dbus-daemon disturbs whoever else uses that machine for a moment):
 * - `systemctl restart dbus`: our socket closes; we reconnect, re-add match rules, Subscribe again,
 *   and a watch opened before keeps delivering; a job started before completes.
 * - `systemctl daemon-reexec`: systemd leaves and rejoins the bus; we notice (NameOwnerChanged),
 *   Subscribe again and keep delivering.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DbusSystemdManager } from '../../src/systemd/dbus-manager.js';
import type { UnitWatch } from '../../src/systemd/manager.js';
import { describeSystemd, machines } from '../support/testbed.js';
import { nextEvent, serviceBody, uniq } from '../support/systemd-contract.js';
import { openManager, systemctl } from './systemd-support.js';

const m = machines[machines.length - 1] ?? 'm3';

async function waitUntil(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describeSystemd(`systemd manager across bus restarts (${m}, from the host)`, () => {
  let mgr: DbusSystemdManager;
  const created: string[] = [];
  beforeAll(async () => {
    mgr = await openManager(m, { bus: { reconnectMinMs: 50, reconnectMaxMs: 500 } });
  });
  afterAll(async () => {
    await mgr.uninstallMany(created).catch(() => undefined);
    await mgr.close();
  });

  const activeIs = (name: string, state: string) => (e: Parameters<Parameters<typeof nextEvent>[1]>[0]) =>
    e.unit === name && e.type === 'changed' && e.state.activeState === state;

  it('keeps a watch alive across a dbus-daemon restart, and finishes a job that spans it', async () => {
    const name = `${uniq('busrestart')}.service`;
    const slow = `${uniq('busrestart-slow')}.service`;
    created.push(name, slow);
    await mgr.installMany([
      { name, contents: serviceBody('bus restart') },
      { name: slow, contents: '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sleep 3\n' },
    ]);
    const w: UnitWatch = mgr.watch({ units: [name, slow] });
    try {
      await nextEvent(w, (e) => e.unit === name);
      const connects = mgr.stats.connects;
      const job = mgr.start(slow);
      await new Promise((r) => setTimeout(r, 300));
      systemctl(m, 'restart', 'dbus.service');
      await waitUntil(() => mgr.stats.connects > connects);
      await expect(job).resolves.toMatchObject({ unit: slow, result: 'done' });
      // pushed events still arrive on the new connection (match rules + Subscribe restored)
      const t0 = Date.now();
      await mgr.start(name);
      await nextEvent(w, activeIs(name, 'active'));
      expect(Date.now() - t0).toBeLessThan(5000);
      await mgr.stop(name);
      await nextEvent(w, activeIs(name, 'inactive'));
    } finally {
      w.close();
    }
  });

  it('keeps a watch alive across systemctl daemon-reexec, and finishes a job that spans it', async () => {
    const name = `${uniq('reexec')}.service`;
    const slow = `${uniq('reexec-slow')}.service`;
    created.push(name, slow);
    await mgr.installMany([
      { name, contents: serviceBody('reexec') },
      { name: slow, contents: '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sleep 3\n' },
    ]);
    const w = mgr.watch({ units: [name, slow] });
    try {
      await nextEvent(w, (e) => e.unit === name);
      const job = mgr.start(slow);
      await new Promise((r) => setTimeout(r, 300));
      systemctl(m, 'daemon-reexec');
      await expect(job).resolves.toMatchObject({ unit: slow, result: 'done' });
      await mgr.start(name);
      await nextEvent(w, activeIs(name, 'active'));
      await mgr.stop(name);
      await nextEvent(w, activeIs(name, 'inactive'));
    } finally {
      w.close();
    }
  });

  it('calls made while the bus is down wait for the reconnect instead of failing', async () => {
    const name = `${uniq('during')}.service`;
    created.push(name);
    await mgr.install(name, serviceBody('during'));
    const connects = mgr.stats.connects;
    systemctl(m, 'restart', 'dbus.service');
    // issued right away, possibly while disconnected
    const s = await mgr.state(name);
    expect(s.loadState).toBe('loaded');
    await waitUntil(() => mgr.stats.connects > connects);
    await expect(mgr.start(name)).resolves.toMatchObject({ result: 'done' });
    await mgr.stop(name);
  });
});
