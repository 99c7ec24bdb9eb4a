/**
 * Log records: what the embedded store writes to its log, one JSON object per state change.
 *
 * Records carry resolved effects, not requests: a txn is evaluated once, against the live state, and
 * the log keeps only what it changed (the keys a prefix delete actually removed, the revision it got).
 * Replaying them through `KvState.apply` is therefore deterministic and checks itself: every record
 * names its sequence number `s` (1, 2, 3 … with no gap across segments and snapshots) and the revision
 * it produced, and a replay that would produce another revision is corruption.
 *
 *   { t: 'w', s, r, e: [['p', key, value, lease] | ['d', key], …] }   a write at revision r
 *   { t: 'g', s, id, ttl }                                            lease grant (no revision)
 *   { t: 'x', s, id, r }   lease revoke/expiry; r = the revision after it (its own when it deleted keys)
 *
 * Lease keep-alives are not logged: on open every surviving lease gets a fresh full TTL.
 */

export type Effect = ['p', string, string, string] | ['d', string];

export interface WriteRecord {
  t: 'w';
  s: number;
  r: number;
  e: Effect[];
}

export interface GrantRecord {
  t: 'g';
  s: number;
  id: string;
  ttl: number;
}

export interface RevokeRecord {
  t: 'x';
  s: number;
  id: string;
  r: number;
}

export type LogRecord = WriteRecord | GrantRecord | RevokeRecord;

export function encodeRecord(rec: LogRecord): string {
  return JSON.stringify(rec);
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStr = (v: unknown): v is string => typeof v === 'string';

function isEffect(e: unknown): e is Effect {
  if (!Array.isArray(e)) return false;
  if (e[0] === 'p') return e.length === 4 && isStr(e[1]) && isStr(e[2]) && isStr(e[3]);
  return e[0] === 'd' && e.length === 2 && isStr(e[1]);
}

/** Parse and shape-check one record; undefined when it is not a record this version writes. */
export function decodeRecord(json: string): LogRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (!isInt(r.s)) return undefined;
  switch (r.t) {
    case 'w':
      return isInt(r.r) && Array.isArray(r.e) && r.e.length > 0 && r.e.every(isEffect)
        ? (r as unknown as WriteRecord)
        : undefined;
    case 'g':
      return isStr(r.id) && isInt(r.ttl) ? (r as unknown as GrantRecord) : undefined;
    case 'x':
      return isStr(r.id) && isInt(r.r) ? (r as unknown as RevokeRecord) : undefined;
    default:
      return undefined;
  }
}
