import { describe, expect, it } from 'vitest';
import { SerialRunner } from '../../../src/lib/runner.js';

describe('SerialRunner', () => {
  it('never runs two jobs at once and coalesces triggers into one more run', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let runs = 0;
    let release!: () => void;
    const r = new SerialRunner(
      async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        runs++;
        if (runs === 1) await new Promise<void>((res) => (release = res));
        inFlight--;
      },
      () => undefined,
    );
    r.trigger();
    for (let i = 0; i < 10; i++) r.trigger();
    release();
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
