/**
 * `npm run bench -- registry [--ops N] [--rounds R]`
 *
 * Put, txn and watch fan-out throughput and p50/p99 latency for:
 *   - the embedded backend (durable: every acknowledged write is fsynced, group commit),
 *   - the etcd backend (EtcdKvStore),
 *   - raw `etcd3` calls against the same etcd,
 * all in the same run, against a private single-member etcd on the same disk (test/support/etcd-single.ts).
 *
 * Targets (issue "Foundation"): the etcd backend adds at most 20% over the raw client; the embedded
 * backend's durable txn throughput with 64 concurrent writers is at least 3x the single-member etcd's.
 * Each measurement is repeated `rounds` times, interleaving the targets, and the median round is kept,
 * because this machine is shared and noisy.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EmbeddedKvStore } from '../src/registry/embedded/index.js';
import { EtcdKvStore } from '../src/registry/etcd.js';
import { cmp, op, type KvStore } from '../src/registry/kv.js';
import { startSingleEtcd } from '../test/support/etcd-single.js';
import { nowMs, summarize } from './stats.js';
import { printTable } from './table.js';

interface Result {
  opsPerSec: number;
  p50: number;
  p99: number;
}

/** Run `n` operations with `concurrency` workers; returns throughput and latency percentiles. */
async function measure(n: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<Result> {
  const lat: number[] = [];
  let next = 0;
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < n; i = next++) {
        const s = nowMs();
        await fn(i);
        lat.push(nowMs() - s);
      }
    }),
  );
  const secs = (nowMs() - t0) / 1000;
  const s = summarize(lat);
  return { opsPerSec: n / secs, p50: s.p50, p99: s.p99 };
}

/** Watch fan-out: `watchers` watches on one prefix, `writes` puts; latency = put start → last watcher got it. */
async function fanout(
  writes: number,
  watchers: number,
  put: (key: string) => Promise<unknown>,
  watch: (onKey: (key: string) => void) => Promise<() => void>,
): Promise<Result> {
  const started = new Map<string, number>();
  const seen = new Map<string, number>();
  const lat: number[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const closers: (() => void)[] = [];
  for (let w = 0; w < watchers; w++) {
    closers.push(
      await watch((key) => {
        const c = (seen.get(key) ?? 0) + 1;
        seen.set(key, c);
        if (c === watchers) {
          lat.push(nowMs() - started.get(key)!);
          if (lat.length === writes) done();
        }
      }),
    );
  }
  await new Promise((r) => setTimeout(r, 300)); // let the watches be created
  const t0 = nowMs();
  for (let i = 0; i < writes; i++) {
    const key = `k${i}`;
    started.set(key, nowMs());
    await put(key);
  }
  await Promise.race([all, new Promise((r) => setTimeout(r, 30_000))]);
  const secs = (nowMs() - t0) / 1000;
  for (const c of closers) c();
  const s = summarize(lat);
  return { opsPerSec: (lat.length * watchers) / secs, p50: s.p50, p99: s.p99 };
}

function median(rs: Result[]): Result {
  const sorted = [...rs].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function arg(args: string[], name: string, def: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
}

export default async function bench(args: string[]): Promise<void> {
  const ops = arg(args, 'ops', 3000);
  const rounds = arg(args, 'rounds', 3);
  const etcd = await startSingleEtcd();
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-emb-'));
  const embedded = await EmbeddedKvStore.open({ dataDir: dir });
  const backend = new EtcdKvStore({ endpoints: [etcd.endpoint], prefix: '/bench/backend/' });
  const raw = new Etcd3({ hosts: etcd.endpoint.replace(/^http:\/\//, '') });
  const rawNs = raw.namespace('/bench/raw/');
  const value = 'x'.repeat(256);

  type Target = { name: string; put: (k: string) => Promise<unknown>; txn: (k: string) => Promise<unknown> };
  const kvTarget = (name: string, s: KvStore): Target => ({
    name,
    put: (k) => s.put(k, value),
    txn: (k) => s.txn({ compare: [cmp.absent(`${k}/lock`)], success: [op.put(k, value)] }),
  });
  const rawTarget: Target = {
    name: 'raw etcd3',
    put: (k) => raw.kv.put({ key: Buffer.from(`/bench/raw/${k}`), value: Buffer.from(value) }),
    txn: (k) =>
      raw.kv.txn({
        compare: [
          { key: Buffer.from(`/bench/raw/${k}/lock`), target: 'Version', result: 'Equal', version: 0 },
        ],
        success: [{ request_put: { key: Buffer.from(`/bench/raw/${k}`), value: Buffer.from(value) } }],
        failure: [],
      }),
  };
  const targets = [kvTarget('embedded', embedded), kvTarget('etcd backend', backend), rawTarget];

  const rows: (string | number)[][] = [];
  const results = new Map<string, Result>();
  const scenarios: { label: string; conc: number; kind: 'put' | 'txn' }[] = [
    { label: 'put, 1 writer', conc: 1, kind: 'put' },
    { label: 'put, 64 writers', conc: 64, kind: 'put' },
    { label: 'txn, 1 writer', conc: 1, kind: 'txn' },
    { label: 'txn, 64 writers', conc: 64, kind: 'txn' },
  ];
  // Warm up every target (JIT, connections, file growth) so the first scenario is not penalised.
  for (const t of targets) {
    await measure(300, 16, (i) => t.put(`warm/${i}`));
    await measure(300, 16, (i) => t.txn(`warm/${i}`));
  }
  for (const sc of scenarios) {
    const per = new Map<string, Result[]>();
    for (let r = 0; r < rounds; r++) {
      for (const t of targets) {
        const n = sc.conc === 1 ? Math.ceil(ops / 3) : ops;
        const res = await measure(n, sc.conc, (i) => t[sc.kind](`${sc.kind}/${r}/${i % 500}`));
        per.set(t.name, [...(per.get(t.name) ?? []), res]);
      }
    }
    for (const t of targets) {
      const m = median(per.get(t.name)!);
      results.set(`${sc.label}|${t.name}`, m);
      rows.push([sc.label, t.name, m.opsPerSec, m.p50, m.p99]);
    }
  }

  // Watch fan-out: 16 watchers, 500 writes.
  const watchers = 16;
  const writes = 500;
  const watchKv = (s: KvStore, prefix: string) => (onKey: (k: string) => void) => {
    const w = s.watch(prefix);
    void (async () => {
      for await (const b of w) for (const e of b.events) onKey(e.kv.key.slice(prefix.length));
    })();
    return Promise.resolve(() => w.close());
  };
  const fan = new Map<string, Result[]>();
  for (let r = 0; r < rounds; r++) {
    const p = `fan/${r}/`;
    fan.set('embedded', [
      ...(fan.get('embedded') ?? []),
      await fanout(writes, watchers, (k) => embedded.put(p + k, value), watchKv(embedded, p)),
    ]);
    fan.set('etcd backend', [
      ...(fan.get('etcd backend') ?? []),
      await fanout(writes, watchers, (k) => backend.put(p + k, value), watchKv(backend, p)),
    ]);
    fan.set('raw etcd3', [
      ...(fan.get('raw etcd3') ?? []),
      await fanout(
        writes,
        watchers,
        (k) =>
          rawNs
            .put(p + k)
            .value(value)
            .exec(),
        async (onKey: (k: string) => void) => {
          const w = await rawNs.watch().prefix(p).create();
          w.on('put', (kv) => onKey(kv.key.toString().slice(p.length)));
          return () => void w.cancel();
        },
      ),
    ]);
  }
  for (const t of ['embedded', 'etcd backend', 'raw etcd3']) {
    const m = median(fan.get(t)!);
    results.set(`fanout|${t}`, m);
    rows.push([`watch fan-out, ${watchers} watchers (events/s)`, t, m.opsPerSec, m.p50, m.p99]);
  }

  printTable(
    `Registry throughput and latency (${ops} ops per 64-writer run, median of ${rounds} rounds; single-member etcd on the same disk)`,
    ['scenario', 'target', 'ops/s', 'p50 ms', 'p99 ms'],
    rows,
  );

  const ratio = (a: string, b: string) => results.get(a)!.opsPerSec / results.get(b)!.opsPerSec;
  const overhead = (label: string) => 1 - ratio(`${label}|etcd backend`, `${label}|raw etcd3`);
  const checks: (string | number)[][] = [
    ...['put, 1 writer', 'put, 64 writers', 'txn, 1 writer', 'txn, 64 writers'].map((l) => [
      `etcd backend overhead vs raw etcd3, ${l}`,
      `${(overhead(l) * 100).toFixed(1)}%`,
      '<= 20%',
      overhead(l) <= 0.2 ? 'ok' : 'MISSED',
    ]),
    [
      'etcd backend overhead vs raw etcd3, watch fan-out',
      `${((1 - ratio('fanout|etcd backend', 'fanout|raw etcd3')) * 100).toFixed(1)}%`,
      '<= 20%',
      1 - ratio('fanout|etcd backend', 'fanout|raw etcd3') <= 0.2 ? 'ok' : 'MISSED',
    ],
    [
      'embedded durable txn vs single-member etcd, 64 writers',
      `${ratio('txn, 64 writers|embedded', 'txn, 64 writers|raw etcd3').toFixed(1)}x`,
      '>= 3x',
      ratio('txn, 64 writers|embedded', 'txn, 64 writers|raw etcd3') >= 3 ? 'ok' : 'MISSED',
    ],
  ];
  printTable('Targets', ['check', 'measured', 'target', 'result'], checks);

  await embedded.close();
  await backend.close();
  raw.close();
  await etcd.stop();
  rmSync(dir, { recursive: true, force: true });
}
