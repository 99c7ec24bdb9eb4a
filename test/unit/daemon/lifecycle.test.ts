/** restartPending (src/daemon/lifecycle.ts): our unit's restart job, asked through the SystemdManager port. */
import { describe, expect, it } from 'vitest';
import { restartPending } from '../../../src/daemon/lifecycle.js';
import { FakeSystemdManager } from '../../../src/systemd/fake.js';
import type { SystemdManager, UnitSummary } from '../../../src/systemd/manager.js';

/** The two calls restartPending makes, answering as systemd would for one unit and its job. */
function systemdWith(units: Record<number, string>, jobs: Record<string, string>) {
  const calls: string[] = [];
  const port: Pick<SystemdManager, 'unitOfPid' | 'list'> = {
    unitOfPid: (pid) => {
      calls.push(`unitOfPid ${pid}`);
      return Promise.resolve(units[pid]);
    },
    list: (names) => {
      calls.push(`list ${names?.join(',')}`);
      return Promise.resolve(
        (names ?? []).map((name): UnitSummary => ({
          name,
          description: '',
          loadState: 'loaded',
          activeState: 'active',
          subState: 'running',
          following: '',
          path: '',
          jobId: jobs[name] ? 7 : 0,
          jobType: jobs[name] ?? '',
        })),
      );
    },
  };
  return { port, calls };
}

const underSystemd = { INVOCATION_ID: 'abc' };

describe('restartPending', () => {
  it('is true only while our own service has a restart job', async () => {
    const { port, calls } = systemdWith({ 42: 'flotilla.service' }, { 'flotilla.service': 'restart' });
    expect(await restartPending(port, underSystemd, 42)).toBe(true);
    expect(calls).toEqual(['unitOfPid 42', 'list flotilla.service']);
    expect(
      await restartPending(
        systemdWith({ 42: 'flotilla.service' }, { 'flotilla.service': 'stop' }).port,
        underSystemd,
        42,
      ),
    ).toBe(false);
    expect(await restartPending(systemdWith({ 42: 'flotilla.service' }, {}).port, underSystemd, 42)).toBe(
      false,
    );
  });

  it('is false outside systemd, outside a service, on errors and on a slow bus', async () => {
    const { port, calls } = systemdWith({ 42: 'flotilla.service' }, { 'flotilla.service': 'restart' });
    expect(await restartPending(port, {}, 42)).toBe(false);
    expect(calls).toEqual([]);
    expect(await restartPending(systemdWith({ 42: 'session-1.scope' }, {}).port, underSystemd, 42)).toBe(
      false,
    );
    expect(await restartPending(systemdWith({}, {}).port, underSystemd, 42)).toBe(false);
    const failing = {
      unitOfPid: () => Promise.reject(new Error('bus gone')),
      list: () => Promise.resolve([]),
    };
    expect(await restartPending(failing, underSystemd, 42)).toBe(false);
    const hanging = {
      unitOfPid: () => new Promise<string>(() => undefined),
      list: () => Promise.resolve([]),
    };
    const t0 = Date.now();
    expect(await restartPending(hanging, underSystemd, 42, 50)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('works over the fake manager (no job queued there: false)', async () => {
    const fake = new FakeSystemdManager();
    fake.pids.set(42, 'flotilla.service');
    expect(await fake.unitOfPid(42)).toBe('flotilla.service');
    expect(await fake.unitOfPid(43)).toBeUndefined();
    expect(await restartPending(fake, underSystemd, 42)).toBe(false);
    await fake.close();
  });
});
