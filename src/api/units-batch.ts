/**
 * The batch API: many units in one request, next to fleet's one-unit-per-request v1 API (which is
 * unchanged). The CLI uses it when the agent answers it, and falls back to fleet v1 otherwise
 * (a 404 or 405 from an older agent or from fleet itself).
 *
 *   POST /flotilla/v1/units/get      {"names":[…]}             → {"units":[ApiUnit…]} (found ones, in order)
 *   POST /flotilla/v1/units/put      {"units":[{name, options?, desiredState?}…]}
 *                                    → {"units":[{"name","outcome","warnings"?}…]}
 *   POST /flotilla/v1/units/destroy  {"names":[…]}             → {"destroyed":[…],"missing":[…]}
 *
 * `put` gives each unit fleet's PUT /fleet/v1/units/{name} semantics (create, replace, or set the
 * desired state; outcome created|replaced|updated|unchanged). Every unit is checked first (name,
 * desiredState, options, [X-Fleet] rules, [Container] section): a bad one fails the request with 400
 * naming its index and name (`units[3] (web@3.service): …`) and nothing is written; so does a unit that
 * cannot be written as asked (409, e.g. no options for a unit that does not exist). The writes go in
 * guarded txns within etcd's op limit (src/registry/batch.ts). At most MAX_BATCH_UNITS units a
 * request, and the body is bounded like every request (MAX_BODY, http.ts).
 */
import { FlotillaError } from '../lib/errors.js';
import { destroyUnits, readJobs, writeUnits, type UnitWrite } from '../registry/batch.js';
import { op } from '../registry/kv.js';
import type { Registry } from '../registry/registry.js';
import {
  KEYS,
  type JobRecord,
  type ScheduleRecord,
  type UnitBody,
  type UnitStateRecord,
} from '../registry/types.js';
import { validateUnitName } from '../unit/index.js';
import { HttpError, methodNotAllowed, parseJson, type ApiRequest, type ApiResponse } from './http.js';
import { checkUnitPut } from './unit-input.js';
import { toApiUnit, type ApiUnit, type StateView } from './unit-view.js';

/** Units per request (the CLI sends bigger sets in several requests). */
export const MAX_BATCH_UNITS = 1000;

export const BATCH_PATHS = {
  get: '/flotilla/v1/units/get',
  put: '/flotilla/v1/units/put',
  destroy: '/flotilla/v1/units/destroy',
} as const;

/** A 400 that names the item: `units[3] (web@3.service): why`. */
function itemError(field: string, i: number, name: unknown, err: unknown): HttpError {
  const what = typeof name === 'string' ? ` (${name})` : '';
  const msg = err instanceof Error ? err.message : String(err);
  const status = err instanceof HttpError ? err.status : err instanceof FlotillaError ? err.httpStatus : 400;
  return new HttpError(status >= 500 ? 400 : status, `${field}[${i}]${what}: ${msg}`);
}

function listField(raw: unknown, field: string): unknown[] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new HttpError(400, 'unable to decode body: expected a JSON object');
  const list = (raw as Record<string, unknown>)[field];
  if (!Array.isArray(list)) throw new HttpError(400, `unable to decode body: ${field} must be an array`);
  if (list.length > MAX_BATCH_UNITS)
    throw new HttpError(413, `${field}: ${list.length} units in one request (at most ${MAX_BATCH_UNITS})`);
  return list;
}

/** Unit names, each checked (E_UNIT_NAME names the index); duplicates are dropped. */
function names(raw: unknown): string[] {
  const out = new Set<string>();
  listField(raw, 'names').forEach((n, i) => {
    try {
      if (typeof n !== 'string') throw new Error('a unit name must be a string');
      validateUnitName(n);
    } catch (err) {
      throw itemError('names', i, n, err);
    }
    out.add(n);
  });
  return [...out];
}

export class UnitsBatch {
  constructor(private readonly registry: Registry) {}

  /** Units with their options and current state, read in txns of gets (3 ops a unit, then bodies). */
  async get(req: ApiRequest): Promise<ApiResponse> {
    const wanted = names(parseJson(req));
    const store = this.registry.store;
    const jobs = await readJobs(store, wanted);
    const found = wanted.filter((n) => jobs.has(n));
    const view: StateView = { schedules: new Map<string, ScheduleRecord>(), states: new Map() };
    const bodies = new Map<string, string>();
    const per = 33;
    const reads: Promise<void>[] = [];
    for (let i = 0; i < found.length; i += per) {
      const chunk = found.slice(i, i + per);
      reads.push(
        store
          .txn({
            compare: [],
            success: chunk.flatMap((n) => [op.get(KEYS.schedule(n)), op.get(KEYS.statesOf(n), true)]),
          })
          .then((res) => {
            chunk.forEach((n, j) => {
              const s = res.results[2 * j];
              const st = res.results[2 * j + 1];
              if (s?.type === 'get' && s.kvs[0])
                view.schedules.set(n, JSON.parse(s.kvs[0].value) as ScheduleRecord);
              const byMachine = new Map<string, UnitStateRecord>();
              for (const kv of st?.type === 'get' ? st.kvs : []) {
                const rec = JSON.parse(kv.value) as UnitStateRecord;
                byMachine.set(rec.machineID, rec);
              }
              view.states.set(n, byMachine);
            });
          }),
      );
    }
    const records = new Map(found.map((n) => [n, JSON.parse(jobs.get(n)!.value) as JobRecord]));
    const hashes = [...new Set([...records.values()].map((j) => j.hash))];
    for (let i = 0; i < hashes.length; i += 100) {
      const chunk = hashes.slice(i, i + 100);
      reads.push(
        store.txn({ compare: [], success: chunk.map((h) => op.get(KEYS.unitBody(h))) }).then((res) => {
          for (const r of res.results)
            if (r.type === 'get' && r.kvs[0]) {
              const b = JSON.parse(r.kvs[0].value) as UnitBody;
              bodies.set(b.hash, b.body);
            }
        }),
      );
    }
    await Promise.all(reads);
    const units: ApiUnit[] = found.map((n) => {
      const job = records.get(n)!;
      return toApiUnit(view, job, bodies.get(job.hash), req.roles);
    });
    return { status: 200, body: units.length > 0 ? { units } : {} };
  }

  async put(req: ApiRequest): Promise<ApiResponse> {
    const items = listField(parseJson(req), 'units');
    const writes: UnitWrite[] = [];
    const warnings = new Map<string, string[]>();
    items.forEach((item, i) => {
      const name = (item as { name?: unknown } | null)?.name;
      try {
        if (typeof name !== 'string' || name === '') throw new Error('every unit needs a name');
        const c = checkUnitPut(name, item);
        writes.push({ name, body: c.text, desiredState: c.desired });
        if (c.warnings.length > 0) warnings.set(name, c.warnings);
      } catch (err) {
        throw itemError('units', i, name, err);
      }
    });
    const results = await writeUnits(this.registry.store, writes);
    return {
      status: 200,
      body: {
        units: results.map((r) => ({
          ...r,
          ...(warnings.has(r.name) ? { warnings: warnings.get(r.name) } : {}),
        })),
      },
    };
  }

  async destroy(req: ApiRequest): Promise<ApiResponse> {
    const r = await destroyUnits(this.registry.store, names(parseJson(req)));
    return { status: 200, body: r };
  }

  /** POST /flotilla/v1/units/{get,put,destroy}; undefined for other paths. */
  async route(req: ApiRequest): Promise<ApiResponse | undefined> {
    const which = (Object.keys(BATCH_PATHS) as (keyof typeof BATCH_PATHS)[]).find(
      (k) => BATCH_PATHS[k] === req.path,
    );
    if (!which) return undefined;
    if (req.method !== 'POST') throw methodNotAllowed(['POST']);
    return this[which](req);
  }
}
