/**
 * locksmith's reboot semaphore as pure functions (LS:lock/semaphore.go): the JSON shape
 * `{"semaphore":1,"max":1,"holders":null}` and the rules of Lock, Unlock and SetMax, plus what
 * locksmith lacked: holders that are gone. Each holder also owns a holder key bound to a lease
 * (src/locksmith/lock.ts); a holder listed in the semaphore whose key is gone (its lease expired)
 * no longer holds, and every write drops it and gives its slot back.
 *
 * Decisions are values with a reason, never exceptions: the store layer turns them into txns.
 */

/** The semaphore record, as locksmith stored it (holders `null` when there are none, as Go did). */
export interface SemaphoreRecord {
  semaphore: number;
  max: number;
  holders: string[] | null;
}

export const INITIAL: SemaphoreRecord = { semaphore: 1, max: 1, holders: null };

export type LockError = 'holder exists' | 'holder does not exist' | `semaphore is at ${number}`;

export type Planned =
  | { ok: true; next: SemaphoreRecord; dropped: string[] }
  | { ok: false; error: LockError; dropped: string[]; next: SemaphoreRecord };

/** Parse a stored record; a value of another shape names the key and the field. */
export function parseSemaphore(key: string, text: string): SemaphoreRecord {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(`${key}: not JSON`);
  }
  const r = v as Partial<SemaphoreRecord>;
  if (typeof r !== 'object' || r === null) throw new Error(`${key}: not an object`);
  if (!Number.isInteger(r.semaphore)) throw new Error(`${key}: "semaphore" must be an integer`);
  if (!Number.isInteger(r.max)) throw new Error(`${key}: "max" must be an integer`);
  if (r.holders !== null && !(Array.isArray(r.holders) && r.holders.every((h) => typeof h === 'string'))) {
    throw new Error(`${key}: "holders" must be null or a list of machine IDs`);
  }
  return { semaphore: r.semaphore!, max: r.max!, holders: r.holders ?? null };
}

function withHolders(rec: SemaphoreRecord, holders: string[], semaphore: number): SemaphoreRecord {
  return { semaphore, max: rec.max, holders: holders.length === 0 ? null : holders };
}

/**
 * Drop holders whose holder key is gone (`live` lacks them): each gives its slot back. Returns the
 * record as it stands for the living, and who was dropped.
 */
export function reap(
  rec: SemaphoreRecord,
  live: ReadonlySet<string>,
): { next: SemaphoreRecord; dropped: string[] } {
  const holders = rec.holders ?? [];
  const dropped = holders.filter((h) => !live.has(h));
  if (dropped.length === 0) return { next: rec, dropped };
  const kept = holders.filter((h) => live.has(h));
  return { next: withHolders(rec, kept, rec.semaphore + dropped.length), dropped };
}

/** Lock(id): a free slot is needed; the holder is inserted sorted; `holder exists` if present. */
export function planLock(rec: SemaphoreRecord, live: ReadonlySet<string>, id: string): Planned {
  const { next: cur, dropped } = reap(rec, live);
  const holders = cur.holders ?? [];
  if (holders.includes(id)) return { ok: false, error: 'holder exists', dropped, next: cur };
  if (cur.semaphore <= 0) return { ok: false, error: `semaphore is at ${cur.semaphore}`, dropped, next: cur };
  const sorted = [...holders, id].sort();
  return { ok: true, next: withHolders(cur, sorted, cur.semaphore - 1), dropped };
}

/** Unlock(id): `holder does not exist` if absent (also when it was reaped just now). */
export function planUnlock(rec: SemaphoreRecord, live: ReadonlySet<string>, id: string): Planned {
  const { next: cur, dropped } = reap(rec, live);
  const holders = cur.holders ?? [];
  if (!holders.includes(id)) return { ok: false, error: 'holder does not exist', dropped, next: cur };
  return {
    ok: true,
    next: withHolders(
      cur,
      holders.filter((h) => h !== id),
      cur.semaphore + 1,
    ),
    dropped,
  };
}

/** SetMax(n): semaphore -= (max - n); holders unaffected, so the semaphore may go negative. */
export function planSetMax(rec: SemaphoreRecord, live: ReadonlySet<string>, n: number): Planned {
  const { next: cur, dropped } = reap(rec, live);
  const diff = cur.max - n;
  return { ok: true, next: { semaphore: cur.semaphore - diff, max: n, holders: cur.holders }, dropped };
}
