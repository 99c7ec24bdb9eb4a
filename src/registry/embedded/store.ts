/**
 * EmbeddedKvStore: the KvStore of a single machine, inside the agent process (see ../kv.ts for the
 * contract). Requests run against the in-memory state (state.ts) one at a time, on the event loop;
 * every change becomes a log record (records.ts) appended with group commit (log.ts).
 *
 * Durability and visibility: a write resolves only once its record is durable. A read answers from
 * the state at the moment it is asked, but resolves only once everything that state includes is
 * durable too, and watches only get a revision once it is durable: nobody ever sees a change that a
 * crash could take back.
 *
 * Compaction: when the current segment grows past `compactBytes` (or the last snapshot's size, if
 * larger) the state is serialized, the log rotated to a new segment after the records the snapshot
 * includes, the snapshot written atomically, then the older segments and snapshots deleted.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { FlotillaError } from '../../lib/errors.js';
import type {
  KeyValue,
  KvStore,
  LeaseGrant,
  RangeResult,
  Txn,
  TxnResult,
  Watch,
  WatchOptions,
} from '../kv.js';
import { op } from '../kv.js';
import { type CompactionPhase, Compactor } from './compaction.js';
import { syncDir } from './files.js';
import type { History, RevisionEntry } from './history.js';
import { LeaseDeadlines } from './leases.js';
import { monotonicClock, type TimeSource } from '../../lib/clock.js';
import { type DirLock, lockDir } from './lock.js';
import { LogWriter } from './log.js';
import { encodeRecord } from './records.js';
import { recover } from './recover.js';
import type { SnapshotSource } from './snapshot.js';
import type { Applied, KvState } from './state.js';
import { WatchHub, deferredWatch } from './watch.js';
import { HOST_PATHS } from '../../lib/paths.js';

export const DEFAULT_DATA_DIR: string = HOST_PATHS.embeddedRegistryDir;

export interface EmbeddedKvStoreOptions {
  /** Data directory, created 0700. Default /var/lib/flotilla/registry. */
  dataDir?: string;
  /** Time source for lease expiry (ms; only differences matter). Default: monotonic `performance.now()`. */
  clock?: TimeSource;
  /** Revisions kept for watches that resume from a revision. Default 10,000. */
  historyRevisions?: number;
  /** Compact when the current log segment grows past this many bytes. Default 64 MiB. */
  compactBytes?: number;
  /** Shortest lease TTL granted, in seconds (etcd's minimum TTL). Default 1. */
  minLeaseTtl?: number;
  /**
   * A request waiting longer than this for its change (or what it read) to become durable fails with
   * E_REGISTRY_UNAVAILABLE; like an etcd timeout, the change may still land. Default 5000 ms.
   */
  requestTimeoutMs?: number;
  /**
   * Where recovery reports what it repaired (a torn tail cut, with its byte count). Structural, so
   * any Logger (pino) fits. Default: nothing is reported (the count is still in `recovery`).
   */
  log?: { warn(obj: object, msg: string): void };
  /** Observation points for tests and benchmarks. */
  hooks?: {
    onSync?: (records: number) => void;
    beforeSync?: () => Promise<void> | void;
    onCompaction?: (phase: CompactionPhase, err?: unknown) => void;
  };
}

const noop = (): void => undefined;

export class EmbeddedKvStore implements KvStore {
  readonly backend = 'embedded' as const;
  /** What opening repaired: bytes of a torn tail cut off the last log segment (0: clean). */
  recovery: { truncatedBytes: number; segment: number } = { truncatedBytes: 0, segment: 0 };
  readonly dataDir: string;
  private readonly clock: TimeSource;
  private readonly opts: EmbeddedKvStoreOptions;
  private readonly ready: Promise<void>;
  private opened = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private failure: FlotillaError | undefined;

  // Set by open():
  private lock!: DirLock;
  private state!: KvState;
  private history!: History;
  private hub!: WatchHub;
  private log!: LogWriter;
  private readonly deadlines: LeaseDeadlines;

  /** Revisions appended but not yet durable, oldest first, to publish to watches once they are. */
  private unpublished: { seq: number; entry: RevisionEntry }[] = [];
  private published = 0;
  private durableSeq = 0;
  private compactor!: Compactor;

  /** Prefer `EmbeddedKvStore.open()`, which reports open errors (lock held, corruption) at once. */
  constructor(opts: EmbeddedKvStoreOptions = {}) {
    this.opts = opts;
    this.dataDir = opts.dataDir ?? DEFAULT_DATA_DIR;
    this.clock = opts.clock ?? monotonicClock; // immune to wall-clock jumps
    this.deadlines = new LeaseDeadlines(this.clock, () => void this.expireLeases().catch(noop));
    this.ready = this.open();
    this.ready.catch(noop); // surfaced by every request instead
  }

  static async open(opts: EmbeddedKvStoreOptions = {}): Promise<EmbeddedKvStore> {
    const store = new EmbeddedKvStore(opts);
    await store.ready;
    return store;
  }

  private async open(): Promise<void> {
    const dir = this.dataDir;
    const created = await mkdir(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) {
      await chmod(dir, 0o700);
      // Make the new directories' entries durable too, or a power cut could lose the whole store.
      for (let d = resolve(dir); ; d = dirname(d)) {
        await syncDir(dirname(d));
        if (d === resolve(created) || dirname(d) === d) break;
      }
    }
    this.lock = await lockDir(dir);
    try {
      const r = await recover(dir, this.opts.historyRevisions ?? 10_000);
      this.recovery = { truncatedBytes: r.truncated, segment: r.segment };
      if (r.truncated > 0) {
        this.opts.log?.warn(
          { dataDir: dir, segment: r.segment, bytes: r.truncated },
          `registry recovery: cut a torn tail of ${r.truncated} bytes off log segment ${r.segment} (an interrupted write; acknowledged data is intact)`,
        );
      }
      this.state = r.state;
      this.history = r.history;
      this.hub = new WatchHub(r.history);
      this.published = r.state.revision;
      this.durableSeq = r.state.seq;
      this.log = new LogWriter({
        dir,
        segment: r.segment,
        handle: r.handle,
        size: r.size,
        timeoutMs: this.opts.requestTimeoutMs ?? 5000,
        onDurable: (seq) => this.onDurable(seq),
        onFail: (err) => this.onFail(err),
        ...(this.opts.hooks?.onSync ? { onSync: this.opts.hooks.onSync } : {}),
        ...(this.opts.hooks?.beforeSync ? { beforeSync: this.opts.hooks.beforeSync } : {}),
      });
      this.compactor = new Compactor({
        dir,
        log: this.log,
        capture: () => this.state.capture(),
        thresholdBytes: this.opts.compactBytes ?? 64 * 1024 * 1024,
        snapshotBytes: r.snapshotBytes,
        ...(this.opts.hooks?.onCompaction ? { onPhase: this.opts.hooks.onCompaction } : {}),
      });
      // etcd on a leader change does the same: every lease gets a full TTL for its owner to renew it.
      for (const id of r.state.leaseIds()) this.deadlines.set(id, r.state.leaseTtl(id)!);
    } catch (err) {
      await this.lock.release();
      throw err;
    }
    this.opened = true;
  }

  // ---- plumbing ----------------------------------------------------------------------------------

  private async begin(): Promise<void> {
    if (this.closed) throw this.closedError();
    await this.ready;
    if (this.failure) throw this.failure;
    if (this.closed) throw this.closedError();
    if (this.deadlines.anyDue()) this.reapDue().catch(noop);
  }

  private closedError(): FlotillaError {
    return new FlotillaError('E_CLOSED', `embedded registry ${this.dataDir} is closed`, {
      dataDir: this.dataDir,
    });
  }

  /** Append an applied change to the log; resolves when it is durable. */
  private commit(a: Applied): Promise<void> {
    if (a.events.length) {
      const entry: RevisionEntry = { revision: this.state.revision, events: a.events };
      this.history.push(entry);
      this.unpublished.push({ seq: a.record.s, entry });
    }
    return this.log.append(encodeRecord(a.record), a.record.s);
  }

  /** `value`, once everything the current state includes is durable. */
  private async settled<T>(value: T): Promise<T> {
    if (this.durableSeq < this.state.seq) await this.log.flushed();
    return value;
  }

  private onDurable(seq: number): void {
    this.durableSeq = seq;
    let n = 0;
    while (n < this.unpublished.length && this.unpublished[n]!.seq <= seq) {
      const { entry } = this.unpublished[n++]!;
      this.published = entry.revision;
      this.hub.publish(entry);
    }
    if (n) this.unpublished = this.unpublished.slice(n);
    if (!this.closed && !this.failure) this.compactor.maybe();
  }

  private onFail(err: FlotillaError): void {
    this.failure = err;
    this.deadlines.stop();
    this.hub.stopAll(err);
  }

  // ---- keys --------------------------------------------------------------------------------------

  async get(key: string): Promise<KeyValue | undefined> {
    await this.begin();
    return this.settled(this.state.get(key));
  }

  async range(prefix: string, opts: { limit?: number } = {}): Promise<RangeResult> {
    await this.begin();
    const limit = opts.limit !== undefined && opts.limit > 0 ? opts.limit : undefined;
    return this.settled({ kvs: this.state.range(prefix, limit), revision: this.state.revision });
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<{ revision: number }> {
    const r = await this.txn({ compare: [], success: [op.put(key, value, opts.lease)] });
    return { revision: r.revision };
  }

  async delete(key: string, opts: { prefix?: boolean } = {}): Promise<{ revision: number; deleted: number }> {
    const r = await this.txn({ compare: [], success: [op.del(key, opts.prefix ?? false)] });
    const res = r.results[0];
    return { revision: r.revision, deleted: res?.type === 'delete' ? res.deleted : 0 };
  }

  async txn(txn: Txn): Promise<TxnResult> {
    await this.begin();
    const { result, applied } = this.state.execTxn(txn);
    if (applied) await this.commit(applied);
    else await this.settled(undefined);
    return result;
  }

  async revision(): Promise<number> {
    await this.begin();
    return this.settled(this.state.revision);
  }

  /**
   * The whole state at one revision (keys and leases), once it is durable: what a backup is
   * written from (see ./backup.ts). Cheap: entries are immutable and shared, not copied.
   */
  async capture(): Promise<SnapshotSource> {
    await this.begin();
    return this.settled(this.state.capture());
  }

  // ---- leases ------------------------------------------------------------------------------------

  async grantLease(ttlSeconds: number): Promise<LeaseGrant> {
    await this.begin();
    if (!Number.isFinite(ttlSeconds)) {
      throw new FlotillaError(
        'E_INVALID_REQUEST',
        `lease TTL must be a number of seconds, got ${ttlSeconds}`,
      );
    }
    const ttl = Math.max(this.opts.minLeaseTtl ?? 1, Math.ceil(ttlSeconds));
    let id: string;
    do {
      const b = randomBytes(8);
      b[0]! &= 0x7f; // etcd lease IDs are positive int64
      id = b.readBigUInt64BE().toString();
    } while (id === '0' || this.state.leaseTtl(id) !== undefined);
    const applied = this.state.execGrant(id, ttl);
    this.deadlines.set(id, ttl);
    await this.commit(applied);
    return { id, ttl };
  }

  async keepAliveOnce(id: string): Promise<number> {
    await this.begin();
    const ttl = this.state.leaseTtl(id);
    if (ttl === undefined)
      throw new FlotillaError('E_LEASE_NOT_FOUND', `lease ${id} not found`, { lease: id });
    this.deadlines.set(id, ttl);
    return this.settled(ttl);
  }

  async revokeLease(id: string): Promise<void> {
    await this.begin();
    const applied = this.state.execRevoke(id); // throws E_LEASE_NOT_FOUND
    this.deadlines.delete(id);
    await this.commit(applied);
  }

  async leaseTimeToLive(id: string): Promise<number | undefined> {
    await this.begin();
    const ms = this.state.leaseTtl(id) === undefined ? undefined : this.deadlines.remainingMs(id);
    return this.settled(ms === undefined ? undefined : Math.ceil(ms / 1000));
  }

  /**
   * Expire every lease past its deadline now (by the clock): one revoke record each, earliest first.
   * The timer calls this; tests with an injected clock may too. Resolves when the revokes are durable.
   */
  async expireLeases(): Promise<void> {
    if (this.closed || this.failure) return;
    await this.ready;
    if (this.closed || this.failure) return;
    await this.reapDue();
  }

  private reapDue(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const id of this.deadlines.due()) {
      this.deadlines.delete(id);
      if (this.state.leaseTtl(id) !== undefined) pending.push(this.commit(this.state.execRevoke(id)));
    }
    return Promise.all(pending).then(noop);
  }

  // ---- watches -----------------------------------------------------------------------------------

  watch(prefix: string, opts: WatchOptions = {}): Watch {
    const start = (): Watch => {
      if (this.closed || this.failure) return this.hub.failed(this.failure ?? this.closedError());
      if (this.deadlines.anyDue()) this.reapDue().catch(noop);
      const from =
        opts.fromRevision !== undefined && opts.fromRevision > 0
          ? opts.fromRevision
          : this.state.revision + 1;
      return this.hub.open(prefix, from, opts.prevKv ?? false, this.published);
    };
    if (this.opened) return start();
    return deferredWatch(this.ready.then(start)); // still opening
  }

  /**
   * Forget the watch history before `revision` (etcd's Compact; the history is also bounded by
   * `historyRevisions`). Watches from an earlier revision then fail with E_REGISTRY_COMPACTED.
   */
  async compactHistory(revision: number): Promise<void> {
    await this.begin();
    this.history.compact(Math.min(revision, this.published + 1));
  }

  /** Counters for tests and benchmarks. */
  get stats(): {
    syncs: number;
    records: number;
    compactions: number;
    /** The last compaction failure's message, if the last compaction failed. */
    compactionError: string | undefined;
    segment: number;
    revision: number;
  } {
    return {
      compactionError: this.compactor?.lastError,
      syncs: this.log?.stats.syncs ?? 0,
      records: this.log?.stats.records ?? 0,
      compactions: this.compactor?.count ?? 0,
      segment: this.log?.segment ?? 0,
      revision: this.state?.revision ?? 0,
    };
  }

  // ---- close -------------------------------------------------------------------------------------

  /** Flush, stop the lease timer and compaction, end every watch, release the directory. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    try {
      await this.ready;
    } catch {
      return; // never opened: nothing to release
    }
    this.deadlines.stop();
    await this.log.flushed().catch(noop);
    await this.compactor.stop();
    this.hub.stopAll(this.failure);
    await this.log.close();
    await this.lock.release();
  }
}
