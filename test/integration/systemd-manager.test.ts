/**
 * The SystemdManager contract against real systemd 252, from the host over machine m1's bus socket.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DbusSystemdManager } from '../../src/systemd/dbus-manager.js';
import { describeSystemd, machines } from '../support/testbed.js';
import { systemdContract, uniq } from '../support/systemd-contract.js';
import { UNITS_DIR, machineFileExists, openManager, systemctl } from './systemd-support.js';

const m = machines[0] ?? 'm1';

describeSystemd(`SystemdManager contract on real systemd (${m}, from the host)`, () => {
  systemdContract(async () => {
    const mgr = await openManager(m);
    return {
      mgr,
      foreign: 'dbus.service',
      fileExists: (n) => Promise.resolve(machineFileExists(m, `${UNITS_DIR}/${n}`)),
      close: () => mgr.close(),
    };
  });
});

describeSystemd(`transient units on real systemd (${m}, from the host)`, () => {
  let mgr: DbusSystemdManager;
  beforeAll(async () => {
    mgr = await openManager(m);
  });
  afterAll(async () => {
    await mgr.close();
  });

  it('sets the cgroup and process properties systemd reports back, and changes IO limits live', async () => {
    const name = `flotilla-${uniq('cg').slice('flotilla-'.length)}.service`;
    await mgr.startTransient({
      name,
      command: ['/bin/sleep', 'infinity'],
      description: 'throttled writer',
      cpuWeight: 30,
      ioWeight: 15,
      ioReadBandwidthMax: [{ device: '/dev/null', bytesPerSecond: 4_000_000 }],
      ioWriteBandwidthMax: [{ device: '/dev/null', bytesPerSecond: 1_000_000 }],
      memoryMax: 256 * 1024 * 1024,
      nice: 7,
    });
    try {
      const show = () =>
        Object.fromEntries(
          systemctl(
            m,
            'show',
            name,
            '-p',
            'CPUWeight,IOWeight,IOReadBandwidthMax,IOWriteBandwidthMax,MemoryMax,Nice,Description',
          )
            .trim()
            .split('\n')
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
      expect(show()).toEqual({
        CPUWeight: '30',
        IOWeight: '15',
        IOReadBandwidthMax: '/dev/null 4000000',
        IOWriteBandwidthMax: '/dev/null 1000000',
        MemoryMax: String(256 * 1024 * 1024),
        Nice: '7',
        Description: 'throttled writer',
      });
      await mgr.setResources(name, {
        ioWriteBandwidthMax: [{ device: '/dev/null', bytesPerSecond: 500_000 }],
        memoryMax: 'infinity',
      });
      expect(show()).toMatchObject({ IOWriteBandwidthMax: '/dev/null 500000', MemoryMax: 'infinity' });
    } finally {
      await mgr.stop(name);
    }
    // collected after stop (CollectMode=inactive-or-failed): nothing left behind
    expect((await mgr.state(name)).loadState).toBe('not-found');
  });
});

describeSystemd(`unitOfPid on real systemd (${m}, from the host)`, () => {
  let mgr: DbusSystemdManager;
  beforeAll(async () => {
    mgr = await openManager(m);
  });
  afterAll(async () => {
    await mgr.close();
  });

  it('names the unit a process runs in (GetUnitByPID), PID 1 in init.scope', async () => {
    const name = `flotilla-${uniq('pid').slice('flotilla-'.length)}.service`;
    await mgr.startTransient({ name, command: ['/bin/sleep', 'infinity'], description: 'pid owner' });
    try {
      const pid = (await mgr.state(name)).mainPID;
      expect(pid).toBeGreaterThan(1);
      expect(await mgr.unitOfPid(pid!)).toBe(name);
      expect(await mgr.unitOfPid(1)).toBe('init.scope');
    } finally {
      await mgr.stop(name);
    }
  });
});
