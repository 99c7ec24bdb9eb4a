/**
 * Many units in a few round trips (the batch API, src/api/units-batch.ts): what `Registry.createUnit`,
 * `replaceUnit`, `setDesiredState` and `destroyUnit` do for one unit, for a thousand.
 *
 * INVARIANTS (the same as registry.ts, per unit)
 *   - Every unit's write compares the job's modRevision read just before (0: absent), so no update is
 *     lost; a txn whose compare fails is re-read and re-decided (at most MAX_RETRIES times).
 *   - A job always points at a body that exists: a job and its body are put in the same txn.
 *   - A body is deleted only when no job uses it, compared on the body's modRevision (every writer of
 *     a job re-puts its body, so an unchanged modRevision proves nobody started using it).
 *   - Each txn is all-or-nothing and within etcd's --max-txn-ops (default 128): at most TXN_OPS ops
 *     and as many compares as units. Txns touch disjoint keys, so up to PIPELINE run at once.
 *   - Everything is decided before anything is written: a unit that cannot be written as asked
 *     (E_CONFLICT, naming it) fails the whole call with nothing written, unless a concurrent writer
 *     changed it between the read and the write (then the units of earlier txns stay written; a
 *     retry of the same call converges, every write being idempotent).
 */
import { FlotillaError } from '../lib/errors.js';
import { cmp, op, type Compare, type KeyValue, type KvStore, type Op } from './kv.js';
import { sha1 } from './registry.js';
import { KEYS, type DesiredState, type JobRecord, type UnitBody } from './types.js';

/** Ops per txn (etcd's default --max-txn-ops is 128). */
export const TXN_OPS = 100;
/** Txns in flight at once. */
const PIPELINE = 8;
const MAX_RETRIES = 16;

/** One unit as fleet's PUT /units/{name} takes it: a body (normalised text) and/or a desired state. */
export interface UnitWrite {
  name: string;
  body?: string | undefined;
  desiredState?: DesiredState | undefined;
}

/** created: new unit; replaced: new body; updated: desired state set; unchanged: nothing to write. */
export type UnitWriteOutcome = 'created' | 'replaced' | 'updated' | 'unchanged';

function parseJob(kv: KeyValue): JobRecord {
  try {
    return JSON.parse(kv.value) as JobRecord;
  } catch {
    throw new FlotillaError('E_REGISTRY_CORRUPT', `registry key ${kv.key} does not hold JSON`, {
      key: kv.key,
    });
  }
}

/** Run `fn` over `items` with at most `n` in flight; the first error is thrown after all settle. */
async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failure) throw failure.err;
}

/** The job keys of `names`, read in txns of TXN_OPS gets (absent names are missing from the map). */
export async function readJobs(store: KvStore, names: readonly string[]): Promise<Map<string, KeyValue>> {
  const out = new Map<string, KeyValue>();
  const chunks: string[][] = [];
  for (let i = 0; i < names.length; i += TXN_OPS) chunks.push(names.slice(i, i + TXN_OPS));
  await pool(chunks, PIPELINE, async (chunk) => {
    const res = await store.txn({ compare: [], success: chunk.map((n) => op.get(KEYS.job(n))) });
    res.results.forEach((r, i) => {
      const kv = r.type === 'get' ? r.kvs[0] : undefined;
      if (kv) out.set(chunk[i]!, kv);
    });
  });
  return out;
}

/** One unit's part of a txn. */
interface Planned {
  name: string;
  outcome: UnitWriteOutcome;
  compare: Compare;
  job?: JobRecord;
  body?: { hash: string; body: string };
}

/** What fleet's PUT does with one unit, given its job key now (throws E_CONFLICT naming the unit). */
function decide(w: UnitWrite, kv: KeyValue | undefined): Planned {
  const compare = cmp.modRev(KEYS.job(w.name), kv?.modRevision ?? 0);
  const existing = kv ? parseJob(kv) : undefined;
  if (w.body !== undefined) {
    const hash = sha1(w.body);
    const body = { hash, body: w.body };
    const desiredState = w.desiredState ?? 'inactive';
    if (!existing)
      return { name: w.name, outcome: 'created', compare, job: { name: w.name, hash, desiredState }, body };
    if (existing.hash !== hash)
      return { name: w.name, outcome: 'replaced', compare, job: { name: w.name, hash, desiredState }, body };
  } else if (!existing) {
    throw new FlotillaError('E_CONFLICT', `${w.name}: unit does not exist and options field empty`, {
      unit: w.name,
    });
  }
  if (w.desiredState === undefined)
    throw new FlotillaError('E_CONFLICT', `${w.name}: must provide DesiredState to update existing unit`, {
      unit: w.name,
    });
  const job = existing; // present: the branches above returned or threw otherwise
  if (job.desiredState === w.desiredState) return { name: w.name, outcome: 'unchanged', compare };
  return { name: w.name, outcome: 'updated', compare, job: { ...job, desiredState: w.desiredState } };
}

/** Group planned writes into txns of at most TXN_OPS ops (a body goes with the first job that needs it). */
function txnsOf(plans: readonly Planned[]): Planned[][] {
  const out: Planned[][] = [];
  let cur: Planned[] = [];
  let ops = 0;
  let bodies = new Set<string>();
  for (const p of plans) {
    const need = 1 + (p.body && !bodies.has(p.body.hash) ? 1 : 0);
    if (ops + need > TXN_OPS && cur.length > 0) {
      out.push(cur);
      cur = [];
      ops = 0;
      bodies = new Set();
    }
    cur.push(p);
    ops += 1 + (p.body && !bodies.has(p.body.hash) ? 1 : 0);
    if (p.body) bodies.add(p.body.hash);
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

function txnOps(plans: readonly Planned[]): Op[] {
  const ops: Op[] = [];
  const bodies = new Set<string>();
  for (const p of plans) {
    if (p.body && !bodies.has(p.body.hash)) {
      bodies.add(p.body.hash);
      ops.push(op.put(KEYS.unitBody(p.body.hash), JSON.stringify(p.body satisfies UnitBody)));
    }
    ops.push(op.put(KEYS.job(p.name), JSON.stringify(p.job)));
  }
  return ops;
}

/**
 * Create, replace or set the desired state of many units (fleet's PUT semantics, per unit). Names
 * must be unique and valid (the caller validates bodies). Returns each unit's outcome, in order.
 */
export async function writeUnits(
  store: KvStore,
  writes: readonly UnitWrite[],
): Promise<{ name: string; outcome: UnitWriteOutcome }[]> {
  const byName = new Map<string, UnitWrite>();
  for (const w of writes) {
    if (byName.has(w.name))
      throw new FlotillaError('E_USAGE', `${w.name}: named twice in one batch`, { unit: w.name });
    byName.set(w.name, w);
  }
  const jobs = await readJobs(store, [...byName.keys()]);
  const outcome = new Map<string, UnitWriteOutcome>();
  const plans = writes.map((w) => decide(w, jobs.get(w.name))); // throws before any write
  for (const p of plans) outcome.set(p.name, p.outcome);
  await pool(txnsOf(plans.filter((p) => p.outcome !== 'unchanged')), PIPELINE, async (txn) => {
    let todo = txn;
    for (let attempt = 0; todo.length > 0; attempt++) {
      if (attempt >= MAX_RETRIES)
        throw new FlotillaError('E_CONFLICT', `units kept changing; gave up after ${MAX_RETRIES} attempts`, {
          unit: todo[0]!.name,
        });
      if (attempt > 0) {
        // A compare failed: another writer changed one of these units. Decide again from fresh reads.
        const fresh = await readJobs(
          store,
          todo.map((p) => p.name),
        );
        todo = todo.map((p) => decide(byName.get(p.name)!, fresh.get(p.name)));
        for (const p of todo) outcome.set(p.name, p.outcome);
        todo = todo.filter((p) => p.outcome !== 'unchanged');
        if (todo.length === 0) break;
      }
      const res = await store.txn({ compare: todo.map((p) => p.compare), success: txnOps(todo) });
      if (res.succeeded) break;
    }
  });
  return writes.map((w) => ({ name: w.name, outcome: outcome.get(w.name)! }));
}

/**
 * Destroy many units: each one's job, schedule and reported states in guarded txns (3 ops a unit),
 * then the bodies no remaining job uses. Returns the names destroyed and those that did not exist.
 */
export async function destroyUnits(
  store: KvStore,
  names: readonly string[],
): Promise<{ destroyed: string[]; missing: string[] }> {
  const wanted = [...new Set(names)];
  // Every job once: which hashes stay in use after this batch.
  const all = await store.range(KEYS.prefixes.job);
  const jobs = new Map(all.kvs.map((kv) => [kv.key.slice(KEYS.prefixes.job.length), kv]));
  const destroyed = new Set<string>();
  const hashes = new Set<string>();
  const present = wanted.filter((n) => jobs.has(n));
  const perTxn = Math.floor(TXN_OPS / 3);
  const chunks: string[][] = [];
  for (let i = 0; i < present.length; i += perTxn) chunks.push(present.slice(i, i + perTxn));
  await pool(chunks, PIPELINE, async (chunk) => {
    let todo = chunk.map((n) => jobs.get(n)!);
    for (let attempt = 0; todo.length > 0; attempt++) {
      if (attempt >= MAX_RETRIES)
        throw new FlotillaError('E_CONFLICT', `units kept changing; gave up after ${MAX_RETRIES} attempts`);
      if (attempt > 0) {
        const fresh = await readJobs(
          store,
          todo.map((kv) => kv.key.slice(KEYS.prefixes.job.length)),
        );
        todo = [...fresh.values()]; // a unit gone meanwhile was destroyed by someone else
        if (todo.length === 0) break;
      }
      const res = await store.txn({
        compare: todo.map((kv) => cmp.modRev(kv.key, kv.modRevision)),
        success: todo.flatMap((kv) => {
          const name = kv.key.slice(KEYS.prefixes.job.length);
          return [op.del(KEYS.job(name)), op.del(KEYS.schedule(name)), op.del(KEYS.statesOf(name), true)];
        }),
      });
      if (res.succeeded) {
        for (const kv of todo) {
          destroyed.add(kv.key.slice(KEYS.prefixes.job.length));
          hashes.add(parseJob(kv).hash);
        }
        break;
      }
    }
  });
  // Bodies: those only the destroyed units used (by the read above); each guarded by its modRevision.
  for (const [name, kv] of jobs) if (!destroyed.has(name)) hashes.delete(parseJob(kv).hash);
  const bodyKeys = [...hashes].map((h) => KEYS.unitBody(h));
  const bodies = new Map<string, KeyValue>();
  for (let i = 0; i < bodyKeys.length; i += TXN_OPS) {
    const res = await store.txn({
      compare: [],
      success: bodyKeys.slice(i, i + TXN_OPS).map((k) => op.get(k)),
    });
    // A body re-put after the jobs were read has a new user we did not see: keep it (gc-bodies).
    for (const r of res.results)
      if (r.type === 'get' && r.kvs[0] && r.kvs[0].modRevision <= all.revision)
        bodies.set(r.kvs[0].key, r.kvs[0]);
  }
  await pool([...bodies.values()], PIPELINE, async (kv) => {
    await store.txn({ compare: [cmp.modRev(kv.key, kv.modRevision)], success: [op.del(kv.key)] });
  });
  return {
    destroyed: wanted.filter((n) => destroyed.has(n)),
    missing: wanted.filter((n) => !destroyed.has(n)),
  };
}
