/**
 * A KvStore proxy for benchmarks: delegates every call to the real store and counts it, at the
 * client, by method (and txns by what they write), with the time spent waiting for etcd. It also
 * lets the benchmark look at every watch batch before the consumer (the ClusterView) applies it
 * (`tap`), which the simulated agents' view router uses to learn which keys changed.
 *
 * The counts are what flotilla asks for; etcd's own /metrics (bench/sim/etcd-metrics.ts) is the
 * server-side truth and is reported next to them.
 */
import type {
  KeyValue,
  KvStore,
  LeaseGrant,
  RangeResult,
  Txn,
  TxnResult,
  Watch,
  WatchBatch,
  WatchOptions,
} from '../../src/registry/kv.js';

export interface CallStat {
  calls: number;
  /** Sum of the time each call took, ms. */
  ms: number;
  /** Calls that threw. */
  errors: number;
}

/** What a txn writes, by the prefix of its first success op (`schedule`, `job`, `machine` …). */
function txnKind(t: Txn): string {
  const first = t.success[0];
  if (!first) return 'txn:empty';
  if (first.type === 'get') return `txn:read(${t.success.length} gets)`;
  const prefix = first.key.split('/')[0] ?? first.key;
  return `txn:${first.type}:${prefix}`;
}

export class CountingKvStore implements KvStore {
  readonly stats = new Map<string, CallStat>();
  /** Called with every watch batch before it is handed to the watch's consumer. */
  tap: ((batch: WatchBatch) => void) | undefined;
  /** Watch batches (revisions) delivered, and events in them. */
  watchBatches = 0;
  watchEvents = 0;

  constructor(readonly inner: KvStore) {}

  get backend(): 'embedded' | 'etcd' {
    return this.inner.backend;
  }

  /** A copy of the counters (for before/after differences). */
  snapshot(): Map<string, CallStat> {
    return new Map([...this.stats].map(([k, v]) => [k, { ...v }]));
  }

  private async count<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let s = this.stats.get(what);
    if (!s) this.stats.set(what, (s = { calls: 0, ms: 0, errors: 0 }));
    s.calls++;
    const t0 = performance.now();
    try {
      return await fn();
    } catch (err) {
      s.errors++;
      throw err;
    } finally {
      s.ms += performance.now() - t0;
    }
  }

  get(key: string): Promise<KeyValue | undefined> {
    return this.count('get', () => this.inner.get(key));
  }
  range(prefix: string, opts?: { limit?: number }): Promise<RangeResult> {
    return this.count('range', () => this.inner.range(prefix, opts));
  }
  put(key: string, value: string, opts?: { lease?: string }): Promise<{ revision: number }> {
    return this.count(`put:${key.split('/')[0] ?? key}`, () => this.inner.put(key, value, opts));
  }
  delete(key: string, opts?: { prefix?: boolean }): Promise<{ revision: number; deleted: number }> {
    return this.count(`delete:${key.split('/')[0] ?? key}`, () => this.inner.delete(key, opts));
  }
  txn(txn: Txn): Promise<TxnResult> {
    return this.count(txnKind(txn), () => this.inner.txn(txn));
  }
  grantLease(ttlSeconds: number): Promise<LeaseGrant> {
    return this.count('lease grant', () => this.inner.grantLease(ttlSeconds));
  }
  keepAliveOnce(id: string, opts?: { timeoutMs?: number }): Promise<number> {
    return this.count('lease keepalive', () => this.inner.keepAliveOnce(id, opts));
  }
  revokeLease(id: string): Promise<void> {
    return this.count('lease revoke', () => this.inner.revokeLease(id));
  }
  leaseTimeToLive(id: string): Promise<number | undefined> {
    return this.count('lease ttl', () => this.inner.leaseTimeToLive(id));
  }
  revision(): Promise<number> {
    return this.count('revision', () => this.inner.revision());
  }

  watch(prefix: string, opts?: WatchOptions): Watch {
    const s = this.stats.get('watch') ?? { calls: 0, ms: 0, errors: 0 };
    s.calls++;
    this.stats.set('watch', s);
    const w = this.inner.watch(prefix, opts);
    const it = w[Symbol.asyncIterator]();
    const next = async (): Promise<IteratorResult<WatchBatch>> => {
      const r = await it.next();
      if (!r.done) {
        this.watchBatches++;
        this.watchEvents += r.value.events.length;
        this.tap?.(r.value);
      }
      return r;
    };
    const iterator: AsyncIterator<WatchBatch> = {
      next,
      return: async () => {
        w.close();
        return (await it.return?.()) ?? { done: true, value: undefined };
      },
    };
    return { close: () => w.close(), [Symbol.asyncIterator]: () => iterator };
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
