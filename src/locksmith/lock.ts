/**
 * The reboot lock in the registry: locksmith's semaphore (src/locksmith/semaphore.ts) over the
 * KvStore port, so one code path serves etcd v3 (a cluster) and the embedded store (one machine).
 *
 * Key layout below the store's prefix (locksmith used `coreos.com/updateengine/rebootlock/`):
 *   locksmith/semaphore                      SemaphoreRecord of the default group ("")
 *   locksmith/holders/<machineID>            HolderRecord, bound to the holder's lease
 *   locksmith/groups/<group>/semaphore       the same per named group (group URI-encoded)
 *   locksmith/groups/<group>/holders/<id>
 *
 * INVARIANTS
 *   - Every change is one txn that compares the semaphore's modRevision it read (locksmith's CAS on
 *     modifiedIndex); a lost race retries from a fresh read.
 *   - Taking the lock writes the semaphore and the holder key together; the holder key carries a
 *     lease, so a holder that is gone past its lease stops holding: every read ignores it and every
 *     write gives its slot back (`reap`). A lock is never left held by a machine that went away.
 */
import { FlotillaError } from '../lib/errors.js';
import { cmp, op, type KvStore, type Op } from '../registry/kv.js';
import {
  INITIAL,
  parseSemaphore,
  planLock,
  planSetMax,
  planUnlock,
  reap,
  type Planned,
  type SemaphoreRecord,
} from './semaphore.js';

export interface HolderRecord {
  machineID: string;
  /** When the lock was taken, ms since epoch. */
  since: number;
  /** /proc/sys/kernel/random/boot_id when the lock was taken: a changed one means "rebooted". */
  bootId?: string;
}

export interface LockStatus {
  group: string;
  semaphore: number;
  max: number;
  /** Live holders, sorted. */
  holders: string[];
}

export interface Holder extends HolderRecord {
  lease: string;
}

const RETRIES = 16;

export function lockDir(group: string): string {
  return group === '' ? 'locksmith/' : `locksmith/groups/${encodeURIComponent(group)}/`;
}

function lockError(msg: string, details: Record<string, unknown>): FlotillaError {
  return new FlotillaError('E_LOCK', msg, details);
}

export class RebootLock {
  readonly semaphoreKey: string;
  readonly holderPrefix: string;

  constructor(
    private readonly store: KvStore,
    readonly group = '',
  ) {
    if (group.includes('\u0000')) throw new FlotillaError('E_CONFIG', 'group: must not contain NUL');
    const dir = lockDir(group);
    this.semaphoreKey = `${dir}semaphore`;
    this.holderPrefix = `${dir}holders/`;
  }

  private holderKey(id: string): string {
    if (id === '' || id.includes('/')) {
      throw new FlotillaError('E_USAGE', `invalid machine ID ${JSON.stringify(id)}`, { field: 'machine-id' });
    }
    return `${this.holderPrefix}${id}`;
  }

  /** The semaphore (created with locksmith's initial value when absent) and the live holder keys. */
  private async read(): Promise<{ rec: SemaphoreRecord; modRevision: number; holders: Map<string, Holder> }> {
    const res = await this.store.txn({
      compare: [],
      success: [op.get(this.semaphoreKey), op.get(this.holderPrefix, true)],
    });
    const [semRes, holdRes] = res.results;
    const semKv = semRes?.type === 'get' ? semRes.kvs[0] : undefined;
    const holders = new Map<string, Holder>();
    for (const kv of holdRes?.type === 'get' ? holdRes.kvs : []) {
      const id = kv.key.slice(this.holderPrefix.length);
      let rec: Partial<HolderRecord> = {};
      try {
        rec = JSON.parse(kv.value) as HolderRecord;
      } catch {
        /* a holder key that is not JSON still holds: it has a lease */
      }
      holders.set(id, {
        machineID: id,
        since: Number(rec.since ?? 0),
        lease: kv.lease,
        ...(rec.bootId ? { bootId: rec.bootId } : {}),
      });
    }
    if (!semKv) return { rec: INITIAL, modRevision: 0, holders };
    let rec: SemaphoreRecord;
    try {
      rec = parseSemaphore(this.semaphoreKey, semKv.value);
    } catch (err) {
      throw new FlotillaError('E_REGISTRY_CORRUPT', (err as Error).message, { key: this.semaphoreKey });
    }
    return { rec, modRevision: semKv.modRevision, holders };
  }

  /** `locksmithctl status`: availability and the holders that are still alive. */
  async status(): Promise<LockStatus> {
    const { rec, holders } = await this.read();
    const { next } = reap(rec, new Set(holders.keys()));
    return { group: this.group, semaphore: next.semaphore, max: next.max, holders: next.holders ?? [] };
  }

  /** The live holder record of `id`, if it holds. */
  async holder(id: string): Promise<Holder | undefined> {
    const { rec, holders } = await this.read();
    const h = holders.get(id);
    return h && (rec.holders ?? []).includes(id) ? h : undefined;
  }

  /**
   * Take a slot for `id`, its holder key bound to `lease`. Throws E_LOCK `holder exists` /
   * `semaphore is at N` (locksmith's messages), E_LEASE_NOT_FOUND when the lease is gone.
   */
  async lock(id: string, lease: string, info: { bootId?: string; now?: number } = {}): Promise<void> {
    const key = this.holderKey(id);
    const value: HolderRecord = {
      machineID: id,
      since: info.now ?? Date.now(),
      ...(info.bootId ? { bootId: info.bootId } : {}),
    };
    await this.change(
      (rec, live) => planLock(rec, live, id),
      [op.put(key, JSON.stringify(value), lease)],
      id,
    );
  }

  /** Give `id`'s slot back. Throws E_LOCK `holder does not exist`. */
  async unlock(id: string): Promise<void> {
    const key = this.holderKey(id);
    await this.change((rec, live) => planUnlock(rec, live, id), [op.del(key)], id);
  }

  /** `set-max N`: returns the old and the new maximum. */
  async setMax(n: number): Promise<{ oldMax: number; max: number }> {
    if (!Number.isInteger(n) || n < 0) {
      throw new FlotillaError('E_USAGE', `max: ${n} must be a whole number ≥ 0`, { field: 'max' });
    }
    let oldMax = 0;
    await this.change((rec, live) => {
      oldMax = reap(rec, live).next.max;
      return planSetMax(rec, live, n);
    }, []);
    return { oldMax, max: n };
  }

  private async change(
    plan: (rec: SemaphoreRecord, live: ReadonlySet<string>) => Planned,
    extra: Op[],
    id?: string,
  ): Promise<void> {
    for (let i = 0; i < RETRIES; i++) {
      const { rec, modRevision, holders } = await this.read();
      const p = plan(rec, new Set(holders.keys()));
      const guard =
        modRevision === 0 ? cmp.absent(this.semaphoreKey) : cmp.modRev(this.semaphoreKey, modRevision);
      const put = op.put(this.semaphoreKey, JSON.stringify(p.next));
      if (!p.ok) {
        // Still write back the reaped record, so every reader sees the slots of departed holders.
        if (p.dropped.length > 0 || modRevision === 0) {
          await this.store.txn({ compare: [guard], success: [put] });
        }
        throw lockError(p.error, { group: this.group, ...(id ? { machineID: id } : {}) });
      }
      const res = await this.store.txn({ compare: [guard], success: [put, ...extra] });
      if (res.succeeded) return;
    }
    throw new FlotillaError(
      'E_CONFLICT',
      `reboot lock ${this.semaphoreKey} kept changing; gave up after ${RETRIES} attempts`,
    );
  }
}
