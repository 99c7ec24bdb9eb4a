/**
 * The in-memory state machine: keys with their revisions, leases with their keys, the global
 * revision and the log sequence number. Pure and synchronous, no I/O and no clock.
 *
 * Two ways in, one way to change anything:
 *   - `exec*` evaluates a request against the current state, applies it and returns the record to log;
 *   - `apply(record)` replays a logged record (on open).
 * Both go through the same `putKey` / `deleteKey` / lease helpers, so a replay reproduces exactly the
 * revisions the live run produced; `apply` checks that it does and throws E_REGISTRY_CORRUPT if not.
 */
import { FlotillaError } from '../../lib/errors.js';
import type { Compare, KeyValue, Op, OpResult, Txn, TxnResult, WatchEvent } from '../kv.js';
import { SortedKeys, compareKeys } from './keyorder.js';
import type { Effect, GrantRecord, LogRecord, RevokeRecord, WriteRecord } from './records.js';
import type { SnapshotData, SnapshotSource } from './snapshot.js';

export const NO_LEASE = '0';

/** Stored key-values are never mutated (a write replaces the object), so events can share them. */
type Entry = Readonly<KeyValue>;

export interface Applied<R extends LogRecord = LogRecord> {
  record: R;
  /** Events of the revision the record made, or [] when it made none. */
  events: WatchEvent[];
}

const copy = (kv: Entry): KeyValue => ({ ...kv });

function cmpNum(a: number, op: Compare['op'], b: number): boolean {
  switch (op) {
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '>':
      return a > b;
  }
}

function duplicateKey(key: string): FlotillaError {
  return new FlotillaError(
    'E_INVALID_REQUEST',
    `duplicate key given in txn request: ${JSON.stringify(key)}`,
    {
      key,
    },
  );
}

/** etcd's checkIntervals: within one branch, no key is put twice and no put falls in a delete's range. */
function checkIntervals(ops: readonly Op[]): void {
  const puts = new Set<string>();
  const dels = ops.filter((o) => o.type === 'delete');
  for (const o of ops) {
    if (o.type !== 'put') continue;
    if (puts.has(o.key)) throw duplicateKey(o.key);
    if (dels.some((d) => (d.prefix ? o.key.startsWith(d.key) : o.key === d.key))) throw duplicateKey(o.key);
    puts.add(o.key);
  }
}

export class KvState {
  revision = 0;
  seq = 0;
  private readonly kvs = new Map<string, Entry>();
  private index = new SortedKeys();
  private readonly leases = new Map<string, { ttl: number; keys: Set<string> }>();

  // ---- reads -------------------------------------------------------------------------------------

  get(key: string): KeyValue | undefined {
    const kv = this.kvs.get(key);
    return kv && copy(kv);
  }

  range(prefix: string, limit?: number): KeyValue[] {
    return this.index.withPrefix(prefix, limit).map((k) => copy(this.kvs.get(k)!));
  }

  get size(): number {
    return this.kvs.size;
  }

  leaseTtl(id: string): number | undefined {
    return this.leases.get(id)?.ttl;
  }

  leaseIds(): string[] {
    return [...this.leases.keys()];
  }

  // ---- requests ----------------------------------------------------------------------------------

  private compare(c: Compare): boolean {
    const kv = this.kvs.get(c.key);
    switch (c.target) {
      case 'value':
        return kv !== undefined && cmpNum(compareKeys(kv.value, c.value), c.op, 0);
      case 'version':
        return cmpNum(kv?.version ?? 0, c.op, c.value);
      case 'create':
        return cmpNum(kv?.createRevision ?? 0, c.op, c.value);
      case 'mod':
        return cmpNum(kv?.modRevision ?? 0, c.op, c.value);
      case 'lease':
        return c.op === '=' ? (kv?.lease ?? NO_LEASE) === c.value : (kv?.lease ?? NO_LEASE) !== c.value;
    }
  }

  private keysOf(op: { key: string; prefix?: boolean }): string[] {
    if (op.prefix) return this.index.withPrefix(op.key);
    return this.kvs.has(op.key) ? [op.key] : [];
  }

  /**
   * Evaluate and apply a txn. Validation (intervals, leases) happens before anything changes, so a
   * txn that throws wrote nothing. Ops run in order; a get sees the puts/deletes before it (etcd).
   */
  execTxn(txn: Txn): { result: TxnResult; applied?: Applied<WriteRecord> } {
    checkIntervals(txn.success);
    if (txn.failure) checkIntervals(txn.failure);
    const succeeded = txn.compare.every((c) => this.compare(c));
    const ops = succeeded ? txn.success : (txn.failure ?? []);
    for (const o of ops) {
      if (o.type === 'put' && o.lease !== undefined && o.lease !== NO_LEASE && !this.leases.has(o.lease)) {
        throw new FlotillaError('E_LEASE_NOT_FOUND', `lease ${o.lease} not found`, { lease: o.lease });
      }
    }
    const rev = this.revision + 1;
    const effects: Effect[] = [];
    const events: WatchEvent[] = [];
    const results: OpResult[] = [];
    for (const o of ops) {
      if (o.type === 'put') {
        const lease = o.lease ?? NO_LEASE;
        events.push(this.putKey(o.key, o.value, lease, rev));
        effects.push(['p', o.key, o.value, lease]);
        results.push({ type: 'put' });
      } else if (o.type === 'delete') {
        const keys = this.keysOf(o);
        for (const k of keys) {
          events.push(this.deleteKey(k, rev));
          effects.push(['d', k]);
        }
        results.push({ type: 'delete', deleted: keys.length });
      } else {
        results.push({ type: 'get', kvs: this.keysOf(o).map((k) => copy(this.kvs.get(k)!)) });
      }
    }
    if (effects.length === 0) return { result: { succeeded, revision: this.revision, results } };
    this.revision = rev;
    const record: WriteRecord = { t: 'w', s: ++this.seq, r: rev, e: effects };
    return { result: { succeeded, revision: rev, results }, applied: { record, events } };
  }

  execGrant(id: string, ttl: number): Applied<GrantRecord> {
    this.grant(id, ttl);
    return { record: { t: 'g', s: ++this.seq, id, ttl }, events: [] };
  }

  /** Revoke a lease (or expire it), deleting its keys in key order in one revision. */
  execRevoke(id: string): Applied<RevokeRecord> {
    const events = this.revoke(id);
    if (events.length) this.revision++;
    return { record: { t: 'x', s: ++this.seq, id, r: this.revision }, events };
  }

  // ---- replay ------------------------------------------------------------------------------------

  /** Replay one logged record; `where` names its file and offset for the corruption error. */
  apply(rec: LogRecord, where: { file: string; offset: number }): WatchEvent[] {
    const bad = (why: string): FlotillaError =>
      new FlotillaError(
        'E_REGISTRY_CORRUPT',
        `registry log ${where.file} at offset ${where.offset}: ${why}`,
        {
          ...where,
          seq: rec.s,
        },
      );
    if (rec.s !== this.seq + 1) throw bad(`record ${rec.s} follows record ${this.seq}`);
    let events: WatchEvent[] = [];
    if (rec.t === 'w') {
      const rev = this.revision + 1;
      if (rec.r !== rev) throw bad(`write at revision ${rec.r} follows revision ${this.revision}`);
      for (const e of rec.e) {
        if (e[0] === 'p') {
          if (e[3] !== NO_LEASE && !this.leases.has(e[3]))
            throw bad(`put ${e[1]} names unknown lease ${e[3]}`);
          events.push(this.putKey(e[1], e[2], e[3], rev));
        } else {
          if (!this.kvs.has(e[1])) throw bad(`delete of missing key ${e[1]}`);
          events.push(this.deleteKey(e[1], rev));
        }
      }
      this.revision = rev;
    } else if (rec.t === 'g') {
      if (this.leases.has(rec.id)) throw bad(`lease ${rec.id} granted twice`);
      this.grant(rec.id, rec.ttl);
    } else {
      if (!this.leases.has(rec.id)) throw bad(`revoke of unknown lease ${rec.id}`);
      const wrote = (this.leases.get(rec.id)?.keys.size ?? 0) > 0;
      if (rec.r !== this.revision + (wrote ? 1 : 0))
        throw bad(`revoke at revision ${rec.r} does not follow ${this.revision}`);
      events = this.revoke(rec.id);
      this.revision = rec.r;
    }
    this.seq = rec.s;
    return events;
  }

  // ---- mutations (shared by exec and apply) ------------------------------------------------------

  private putKey(key: string, value: string, lease: string, rev: number): WatchEvent {
    const prev = this.kvs.get(key);
    const kv: Entry = {
      key,
      value,
      createRevision: prev ? prev.createRevision : rev,
      modRevision: rev,
      version: prev ? prev.version + 1 : 1,
      lease,
    };
    this.kvs.set(key, kv);
    if (!prev) this.index.insert(key);
    if (prev && prev.lease !== NO_LEASE) this.leases.get(prev.lease)?.keys.delete(key);
    if (lease !== NO_LEASE) this.leases.get(lease)?.keys.add(key);
    return prev ? { type: 'put', kv, prevKv: prev } : { type: 'put', kv };
  }

  private deleteKey(key: string, rev: number): WatchEvent {
    const prev = this.kvs.get(key)!;
    this.kvs.delete(key);
    this.index.remove(key);
    if (prev.lease !== NO_LEASE) this.leases.get(prev.lease)?.keys.delete(key);
    const kv: Entry = { key, value: '', createRevision: 0, modRevision: rev, version: 0, lease: NO_LEASE };
    return { type: 'delete', kv, prevKv: prev };
  }

  private grant(id: string, ttl: number): void {
    this.leases.set(id, { ttl, keys: new Set() });
  }

  private revoke(id: string): WatchEvent[] {
    const lease = this.leases.get(id);
    if (!lease) throw new FlotillaError('E_LEASE_NOT_FOUND', `lease ${id} not found`, { lease: id });
    const rev = this.revision + 1;
    const keys = [...lease.keys].sort(compareKeys);
    const events = keys.map((k) => this.deleteKey(k, rev));
    this.leases.delete(id);
    return events;
  }

  // ---- snapshots ---------------------------------------------------------------------------------

  /** The state as of now, for a snapshot: O(keys) pointer copies, since entries are immutable. */
  capture(): SnapshotSource {
    return {
      seq: this.seq,
      revision: this.revision,
      leases: [...this.leases].map(([id, l]) => [id, l.ttl]),
      entries: [...this.kvs.values()],
    };
  }

  static fromSnapshot(data: SnapshotData, where = 'snapshot'): KvState {
    const s = new KvState();
    s.seq = data.seq;
    s.revision = data.revision;
    for (const [id, ttl] of data.leases) s.grant(id, ttl);
    for (const [key, value, createRevision, modRevision, version, lease] of data.kvs) {
      s.kvs.set(key, { key, value, createRevision, modRevision, version, lease });
      if (lease === NO_LEASE) continue;
      const l = s.leases.get(lease);
      if (!l)
        throw new FlotillaError('E_REGISTRY_CORRUPT', `${where}: key ${key} names unknown lease ${lease}`);
      l.keys.add(key);
    }
    s.index = SortedKeys.from(s.kvs.keys());
    return s;
  }
}
