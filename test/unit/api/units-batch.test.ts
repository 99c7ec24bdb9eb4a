/**
 * The batch API (POST /flotilla/v1/units/get|put|destroy) over a real embedded registry, called
 * in-process: fleet's PUT semantics per unit, everything checked before any write, txns within
 * etcd's op limit, body GC on destroy.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetV1 } from '../../../src/api/fleet-v1.js';
import type { ApiRequest } from '../../../src/api/http.js';
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { Registry } from '../../../src/registry/registry.js';
import { KEYS } from '../../../src/registry/types.js';
import type { KvStore, Txn } from '../../../src/registry/kv.js';

const opts = (desc: string) => [
  { section: 'Unit', name: 'Description', value: desc },
  { section: 'Service', name: 'ExecStart', value: '/bin/sleep infinity' },
];

function post(path: string, body: unknown): ApiRequest {
  return {
    method: 'POST',
    path,
    query: new URLSearchParams(),
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify(body)),
  };
}

describe('batch API', () => {
  let dir: string;
  let store: EmbeddedKvStore;
  let registry: Registry;
  let api: FleetV1;
  let maxOps = 0;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-batch-'));
    store = await EmbeddedKvStore.open({ dataDir: dir });
    // Count the largest txn (etcd refuses more than --max-txn-ops, default 128).
    const txn = store.txn.bind(store);
    maxOps = 0;
    const counting: KvStore = Object.assign(Object.create(store) as KvStore, {
      txn: (t: Txn) => {
        maxOps = Math.max(maxOps, t.success.length, t.compare.length, t.failure?.length ?? 0);
        return txn(t);
      },
    });
    registry = new Registry(counting);
    api = new FleetV1(registry);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates 1,000 instances launched in txns within the op limit, then reads and destroys them', async () => {
    const units = Array.from({ length: 1000 }, (_, i) => ({
      name: `web@${i}.service`,
      options: opts('web %i'),
      desiredState: 'launched',
    }));
    const r = await api.route(post('/flotilla/v1/units/put', { units }));
    expect(r?.status).toBe(200);
    const out = (r!.body as { units: { outcome: string }[] }).units;
    expect(out.filter((u) => u.outcome === 'created')).toHaveLength(1000);
    expect(maxOps).toBeLessThanOrEqual(128);
    const jobs = await registry.listJobs();
    expect(jobs.filter((j) => j.desiredState === 'launched')).toHaveLength(1000);
    expect((await store.range(KEYS.prefixes.unitBody)).kvs).toHaveLength(1); // one shared body

    // Again with a desired state only: updated; same state: unchanged.
    const again = await api.route(
      post('/flotilla/v1/units/put', {
        units: [
          { name: 'web@1.service', desiredState: 'loaded' },
          { name: 'web@2.service', desiredState: 'launched' },
        ],
      }),
    );
    expect((again!.body as { units: { outcome: string }[] }).units.map((u) => u.outcome)).toEqual([
      'updated',
      'unchanged',
    ]);

    const got = await api.route(post('/flotilla/v1/units/get', { names: ['web@1.service', 'nope.service'] }));
    const gu = (got!.body as { units: { name: string; desiredState: string; options: unknown[] }[] }).units;
    expect(gu.map((u) => [u.name, u.desiredState])).toEqual([['web@1.service', 'loaded']]);
    expect(gu[0]!.options).toHaveLength(2);

    const d = await api.route(
      post('/flotilla/v1/units/destroy', { names: [...units.slice(1).map((u) => u.name), 'nope.service'] }),
    );
    expect((d!.body as { destroyed: string[] }).destroyed).toHaveLength(999);
    await api.route(post('/flotilla/v1/units/destroy', { names: ['web@0.service'] }));
    expect((d!.body as { missing: string[] }).missing).toEqual(['nope.service']);
    expect(maxOps).toBeLessThanOrEqual(128);
    expect(await registry.listJobs()).toHaveLength(0);
    expect((await store.range(KEYS.prefixes.unitBody)).kvs).toHaveLength(0);
  }, 30_000);

  it('refuses the whole batch, naming the unit, and writes nothing', async () => {
    const units = [
      { name: 'a.service', options: opts('a') },
      { name: 'b.service', options: opts('b'), desiredState: 'running' },
    ];
    await expect(api.route(post('/flotilla/v1/units/put', { units }))).rejects.toThrow(
      /units\[1\] \(b\.service\): invalid desiredState "running"/,
    );
    await expect(
      api.route(
        post('/flotilla/v1/units/put', {
          units: [units[0], { name: 'c.service', desiredState: 'launched' }],
        }),
      ),
    ).rejects.toThrow(/c\.service: unit does not exist and options field empty/);
    expect(await registry.listJobs()).toHaveLength(0);
    await expect(
      api.route(post('/flotilla/v1/units/put', { units: Array.from({ length: 1001 }, () => units[0]) })),
    ).rejects.toThrow(/at most 1000/);
  });

  it('keeps a body another unit still uses', async () => {
    await api.route(
      post('/flotilla/v1/units/put', {
        units: [
          { name: 'x.service', options: opts('same') },
          { name: 'y.service', options: opts('same') },
        ],
      }),
    );
    await api.route(post('/flotilla/v1/units/destroy', { names: ['x.service'] }));
    expect((await store.range(KEYS.prefixes.unitBody)).kvs).toHaveLength(1);
    expect((await registry.getUnit('y.service'))?.body).toContain('same');
  });

  it('answers 405 for GET', async () => {
    await expect(api.route({ ...post('/flotilla/v1/units/put', {}), method: 'GET' })).rejects.toThrow(
      /only POST/,
    );
  });
});
