/**
 * KvStore: the one port between flotilla and its cluster store. Two backends implement it with the
 * same semantics, etcd's v3 data model:
 *   - `EtcdKvStore` (src/registry/etcd.ts): a real etcd cluster through `etcd3`;
 *   - `EmbeddedKvStore` (src/registry/embedded/): an in-process store persisted to an append-only
 *     log under the data directory, for a single machine.
 *
 * CONTRACT (checked by test/integration/registry-contract.test.ts against every backend):
 *   - One global `revision` counter. Every successful write (put, delete that deleted something, or a
 *     txn that wrote) increases it by exactly one; all keys written by one txn share that revision.
 *   - A key's `createRevision` is the revision that created it, `modRevision` the last write, and
 *     `version` counts writes since creation (1 after creation). A deleted key has version 0.
 *   - `txn` is atomic: all compares are evaluated against one state, then either every `success` op
 *     or every `failure` op is applied, never a part. Compares on a missing key see
 *     version/create/mod = 0 and value = undefined (a value compare on a missing key is false).
 *   - Leases: `grantLease(ttl)` returns an ID; keys put with it are deleted (one delete event each) when
 *     the lease expires or is revoked. `keepAliveOnce` resets the TTL and returns it, or throws
 *     E_LEASE_NOT_FOUND. Putting with an unknown lease throws E_LEASE_NOT_FOUND and writes nothing.
 *   - Watches deliver every change to keys under `prefix` in revision order, grouped by revision,
 *     starting just after `fromRevision - 1` (so `fromRevision: r` includes the changes made at r).
 *     Without `fromRevision` they start after the current revision. A watch survives a reconnect
 *     (etcd member loss) without missing or repeating a revision. When history before `fromRevision`
 *     is gone the iterator throws E_REGISTRY_COMPACTED; the consumer re-reads with `range` and
 *     watches again from that revision + 1.
 *   - A store that cannot reach its data throws E_REGISTRY_UNAVAILABLE, never hangs past its
 *     configured request timeout.
 *   - Keys and values are UTF-8 strings. Prefix ranges match keys that start with `prefix`.
 */

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** Lease ID as a decimal string, '0' when the key has no lease. */
  lease: string;
}

export type CompareOp = '=' | '!=' | '<' | '>';

export type Compare =
  | { key: string; target: 'value'; op: CompareOp; value: string }
  | { key: string; target: 'version' | 'create' | 'mod'; op: CompareOp; value: number }
  | { key: string; target: 'lease'; op: '=' | '!='; value: string };

export type Op =
  | { type: 'put'; key: string; value: string; lease?: string }
  | { type: 'delete'; key: string; prefix?: boolean }
  | { type: 'get'; key: string; prefix?: boolean };

export type OpResult =
  { type: 'put' } | { type: 'delete'; deleted: number } | { type: 'get'; kvs: KeyValue[] };

export interface Txn {
  compare: Compare[];
  success: Op[];
  failure?: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  /** The store's revision after the txn (the txn's own revision when it wrote). */
  revision: number;
  results: OpResult[];
}

export interface RangeResult {
  kvs: KeyValue[];
  /** The revision the range was read at. Watch from `revision + 1` to follow on without a gap. */
  revision: number;
}

export interface LeaseGrant {
  id: string;
  ttl: number;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  /** For deletes: the key, modRevision = the delete's revision, empty value. */
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface WatchBatch {
  revision: number;
  events: WatchEvent[];
}

export interface WatchOptions {
  /** First revision to deliver. Default: changes after the current revision. */
  fromRevision?: number;
  /** Include the previous value of each changed key. */
  prevKv?: boolean;
}

/** A running watch. Iterate it; `close()` (or breaking out of the loop) stops it. */
export interface Watch extends AsyncIterable<WatchBatch> {
  close(): void;
}

export interface KvStore {
  readonly backend: 'embedded' | 'etcd';
  get(key: string): Promise<KeyValue | undefined>;
  range(prefix: string, opts?: { limit?: number }): Promise<RangeResult>;
  put(key: string, value: string, opts?: { lease?: string }): Promise<{ revision: number }>;
  delete(key: string, opts?: { prefix?: boolean }): Promise<{ revision: number; deleted: number }>;
  txn(txn: Txn): Promise<TxnResult>;
  grantLease(ttlSeconds: number): Promise<LeaseGrant>;
  /** Reset the lease's TTL; resolves to the TTL granted, throws E_LEASE_NOT_FOUND. */
  /** `timeoutMs` bounds this one renewal (at most the store's request timeout). */
  keepAliveOnce(id: string, opts?: { timeoutMs?: number }): Promise<number>;
  revokeLease(id: string): Promise<void>;
  /** Remaining TTL in seconds, or undefined when the lease does not exist. */
  leaseTimeToLive(id: string): Promise<number | undefined>;
  /** Current revision of the store. */
  revision(): Promise<number>;
  watch(prefix: string, opts?: WatchOptions): Watch;
  close(): Promise<void>;
}

/** Helpers to build ops and compares without typos. */
export const op = {
  put: (key: string, value: string, lease?: string): Op =>
    lease === undefined ? { type: 'put', key, value } : { type: 'put', key, value, lease },
  del: (key: string, prefix = false): Op =>
    prefix ? { type: 'delete', key, prefix } : { type: 'delete', key },
  get: (key: string, prefix = false): Op => (prefix ? { type: 'get', key, prefix } : { type: 'get', key }),
};

export const cmp = {
  /** The key does not exist. */
  absent: (key: string): Compare => ({ key, target: 'version', op: '=', value: 0 }),
  /** The key exists. */
  present: (key: string): Compare => ({ key, target: 'version', op: '>', value: 0 }),
  /** The key was last written at `rev` (0 = the key does not exist). */
  modRev: (key: string, rev: number): Compare => ({ key, target: 'mod', op: '=', value: rev }),
  value: (key: string, value: string): Compare => ({ key, target: 'value', op: '=', value }),
};
