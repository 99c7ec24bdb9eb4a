/**
 * RegistryFollower (the watch loop of ClusterView and ServicesView) over a scripted store: resumes
 * after the last applied revision, retries a broken watch with backoff, re-reads after a compaction,
 * reports availability (and probes it back), and stops at once even while waiting to retry.
 */
import { describe, expect, it } from 'vitest';
import { FlotillaError } from '../../../src/lib/errors.js';
import { RegistryFollower } from '../../../src/registry/follow.js';
import type { KvStore, Watch, WatchBatch, WatchOptions } from '../../../src/registry/kv.js';
import { Registry } from '../../../src/registry/registry.js';

type Step = { batches: WatchBatch[]; thenThrow?: Error } | 'hang';

/** A store whose n-th watch plays script[n]; records the options of every watch call. */
function scriptedStore(script: Step[], revisionFails = () => false) {
  const calls: { prefix: string; opts: WatchOptions }[] = [];
  const store = {
    backend: 'embedded',
    watch(prefix: string, opts: WatchOptions): Watch {
      calls.push({ prefix, opts });
      const step = script[calls.length - 1] ?? 'hang';
      let closed = false;
      let release: (() => void) | undefined;
      return {
        close() {
          closed = true;
          release?.();
        },
        async *[Symbol.asyncIterator]() {
          if (step === 'hang') {
            await new Promise<void>((r) => (release = r));
            return;
          }
          for (const b of step.batches) if (!closed) yield b;
          if (step.thenThrow) throw step.thenThrow;
          await new Promise<void>((r) => (release = r));
        },
      };
    },
    revision: () => (revisionFails() ? Promise.reject(new Error('down')) : Promise.resolve(1)),
  } as unknown as KvStore;
  return { registry: new Registry(store), calls };
}

const batch = (revision: number): WatchBatch => ({
  revision,
  events: [
    {
      type: 'put',
      kv: {
        key: `k${revision}`,
        value: 'v',
        createRevision: revision,
        modRevision: revision,
        version: 1,
        lease: '0',
      },
    },
  ],
});

const until = async (ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(ok()).toBe(true);
};

describe('RegistryFollower', () => {
  it('applies batches, resumes after the last applied revision when the watch breaks, and re-reads after a compaction', async () => {
    const { registry, calls } = scriptedStore([
      { batches: [batch(11), batch(12)], thenThrow: new Error('connection reset') },
      {
        batches: [],
        thenThrow: new FlotillaError('E_REGISTRY_COMPACTED', 'watch: revision 13 was compacted'),
      },
      { batches: [batch(31)] },
    ]);
    let revision = 10;
    const applied: number[] = [];
    const errors: string[] = [];
    const avail: boolean[] = [];
    let resyncs = 0;
    const f = new RegistryFollower({
      registry,
      prefix: 'services/',
      revision: () => revision,
      apply: (rev) => {
        applied.push(rev);
        revision = rev;
      },
      resync: () => {
        resyncs++;
        revision = 30;
        return Promise.resolve();
      },
      error: (e) => void errors.push(e.message),
      available: (up) => void avail.push(up),
      backoffMs: 1,
    });
    const done = f.run();
    await until(() => applied.includes(31));
    expect(applied).toEqual([11, 12, 31]);
    expect(calls.map((c) => [c.prefix, c.opts.fromRevision])).toEqual([
      ['services/', 11],
      ['services/', 13],
      ['services/', 31],
    ]);
    expect(resyncs).toBe(1);
    expect(errors).toEqual(['connection reset', 'watch: revision 13 was compacted']);
    // up with each batch, down at each break; the probe after the backoff brings it up again
    expect(avail).toEqual([true, true, false, true, false, true]);
    f.stop();
    await done;
  });

  it('backs off while the store stays down, and stop() ends it at once, also mid-backoff', async () => {
    const down = new Error('unavailable');
    const { registry, calls } = scriptedStore(
      Array.from({ length: 50 }, () => ({ batches: [], thenThrow: down })),
      () => true,
    );
    const avail: boolean[] = [];
    const f = new RegistryFollower({
      registry,
      revision: () => 5,
      apply: () => undefined,
      resync: () => Promise.resolve(),
      error: () => undefined,
      available: (up) => void avail.push(up),
      backoffMs: 20,
    });
    const t0 = Date.now();
    const done = f.run();
    await new Promise((r) => setTimeout(r, 200));
    // 20, 40, 80 ms … : a handful of attempts in 200 ms, not a busy loop
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.length).toBeLessThanOrEqual(6);
    expect(avail.every((u) => !u)).toBe(true);
    f.stop();
    await done;
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
