import { afterEach, describe, expect, it } from 'vitest';
import { nullLogger } from '../../../src/lib/log.js';
import { MarkGood, markGoodStep } from '../../../src/daemon/mark-good.js';
import { loadUpdateConfig } from '../../../src/update/config.js';
import {
  coreosImage,
  scratch,
  sgdisk,
  sgdiskBits,
  sgdiskMissing,
  type Scratch,
} from '../update/disk-image.js';

describe('markGoodStep (fake clock)', () => {
  it('marks only after an unbroken healthy streak of the full length', () => {
    const need = 60_000;
    let since: number | undefined;
    const seq: [number, boolean][] = [
      [0, true],
      [30_000, true],
      [40_000, false], // a failed check restarts the count
      [50_000, true],
      [100_000, true],
      [110_000, true],
    ];
    const marks = seq.map(([t, h]) => {
      const r = markGoodStep(since, t, h, need);
      since = r.since;
      return r.mark;
    });
    expect(marks).toEqual([false, false, false, false, false, true]);
    expect(since).toBe(50_000);
  });
});

describe.skipIf(sgdiskMissing)('MarkGood subsystem on an sgdisk image', { timeout: 20_000 }, () => {
  let s: Scratch;
  afterEach(() => s?.cleanup());
  const ctx = { config: undefined, log: nullLogger, machineId: 'm', signal: new AbortController().signal };

  it('a trial boot of B is marked good only once the agent has been healthy long enough', async () => {
    s = scratch();
    const img = coreosImage(`${s.dir}/disk.img`);
    // After an update and GRUB's decrement: A priority 1 good, B priority 2 tries 0 not good.
    sgdisk('-A3:clear:49', '-A3:set:48', '-A4:clear:48', '-A4:set:49', img);
    const config = loadUpdateConfig(
      { UPDATE_DISK: img, UPDATE_HEALTHY_SECONDS: '30', UPDATE_GRUBENV: `${s.dir}/grubenv` },
      `${s.dir}/none.conf`,
    );
    let t = 0;
    let healthy = true;
    const mg = new MarkGood({
      healthy: () => healthy,
      config: () => config,
      now: () => t,
      booted: 'B',
      intervalMs: 5,
    });
    await mg.start(ctx);
    expect(mg.status()).toMatchObject({ state: 'running', slot: 'B' });
    await new Promise((r) => setTimeout(r, 30));
    t = 20_000;
    await new Promise((r) => setTimeout(r, 30));
    healthy = false;
    await new Promise((r) => setTimeout(r, 30));
    healthy = true;
    t = 25_000;
    await new Promise((r) => setTimeout(r, 30));
    t = 50_000; // healthy for 25 s since the break: not yet
    await new Promise((r) => setTimeout(r, 30));
    expect(sgdiskBits(img, 4)).toEqual([49]);
    t = 55_000; // 30 s
    await new Promise((r) => setTimeout(r, 50));
    await mg.settled();
    expect(sgdiskBits(img, 4)).toEqual([49, 56]); // B: priority 2, successful
    expect(sgdiskBits(img, 3)).toEqual([48, 56]); // A: priority 1, still good
    expect(mg.status()).toMatchObject({ reason: expect.stringContaining('marked good') as unknown });
    await mg.stop();
  });

  it('an already good slot: nothing to do; no UPDATE_DISK: disabled', async () => {
    s = scratch();
    const img = coreosImage(`${s.dir}/disk.img`);
    const mg = new MarkGood({
      healthy: () => true,
      config: () => loadUpdateConfig({ UPDATE_DISK: img }, `${s.dir}/x`),
      booted: 'A',
    });
    await mg.start(ctx);
    expect(mg.status()).toMatchObject({ state: 'running', reason: 'slot A is already marked good' });
    const off = new MarkGood({ healthy: () => true, config: () => loadUpdateConfig({}, `${s.dir}/x`) });
    await off.start(ctx);
    expect(off.status().state).toBe('disabled');
  });
});
