import { describe, expect, it } from 'vitest';
import { SerialRunner } from '../../../src/lib/runner.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('SerialRunner', () => {
  it('never runs two jobs at once and coalesces triggers into one more run', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let runs = 0;
    let open = false;
    const r = new SerialRunner(
      async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        runs++;
        while (runs === 1 && !open) await tick();
        inFlight--;
      },
      () => undefined,
    );
    r.trigger();
    r.trigger(); // before the first run starts: coalesced into it
    while (runs === 0) await tick();
    for (let i = 0; i < 10; i++) r.trigger(); // during the run: one more run
    open = true;
    await r.idle();
    expect(runs).toBe(2);
    expect(maxInFlight).toBe(1);
  });

  it('reports errors and keeps going; stops starting runs after stop()', async () => {
    const errors: string[] = [];
    let runs = 0;
    const r = new SerialRunner(
      () => {
        runs++;
        return Promise.reject(new Error(`boom ${runs}`));
      },
      (e) => errors.push(e.message),
    );
    r.trigger();
    await r.idle();
    r.trigger();
    await r.stop();
    r.trigger();
    await r.idle();
    expect(errors).toEqual(['boom 1', 'boom 2']);
  });
});
