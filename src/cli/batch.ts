/**
 * The CLI's side of the batch API (src/api/units-batch.ts): many units per request, so a command on
 * 1,000 units makes a handful of requests instead of 2,000. An agent without it (an older flotilla,
 * or fleet itself, which answer 404 or 405) gets fleet v1's one request per unit, 16 in flight; the
 * client remembers that for the rest of the command.
 *
 * Requests carry at most MAX_BATCH_UNITS units and about 1 MiB of JSON (the agent refuses bodies over
 * 2 MiB). A request is all or nothing on the agent: every unit is checked before any is written. A
 * command over more units than one request holds is not: an earlier request's units stay written
 * when a later one fails, and the error says which unit failed.
 */
import type { DesiredState } from '../registry/types.js';
import type { UnitOption } from '../unit/index.js';
import { ApiError, type ApiClient } from './client.js';
import { getUnit, unitPath, type ApiUnit } from './fleet.js';

export const BATCH = {
  get: '/flotilla/v1/units/get',
  put: '/flotilla/v1/units/put',
  destroy: '/flotilla/v1/units/destroy',
} as const;

/** The agent's limits (MAX_BATCH_UNITS; half of MAX_BODY, so options with long values still fit). */
const MAX_UNITS = 1000;
const MAX_BYTES = 1024 * 1024;

/** Requests in flight at once on the one-unit-per-request fallback (fleetctl made one at a time). */
export const PARALLEL = 16;

export interface UnitPut {
  name: string;
  options?: UnitOption[];
  desiredState?: DesiredState;
}

/** A unit the agent would not take; `written` lists the units earlier requests did write. */
export class UnitPutError extends Error {
  constructor(
    readonly unit: string,
    override readonly cause: Error,
    readonly written: string[],
  ) {
    super(cause.message);
  }
}

const unsupported = new WeakSet<ApiClient>();

/** True unless this client's agent has answered a batch route with 404/405. */
export function batchKnown(client: ApiClient): boolean {
  return !unsupported.has(client);
}

/** Does the agent lack the batch routes? Remembered per client. */
function noBatch(client: ApiClient, err: unknown): boolean {
  if (err instanceof ApiError && (err.status === 404 || err.status === 405)) {
    unsupported.add(client);
    return true;
  }
  return false;
}

/** Split `items` into requests of at most MAX_UNITS items and about MAX_BYTES of JSON. */
export function chunks<T>(items: readonly T[], size: (t: T) => number = () => 0): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const it of items) {
    const n = size(it);
    if (cur.length > 0 && (cur.length >= MAX_UNITS || bytes + n > MAX_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(it);
    bytes += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Run `fn` over `items` with at most `n` in flight; results in item order (errors as values). */
export async function mapPool<T, R>(
  items: readonly T[],
  n: number,
  fn: (t: T) => Promise<R>,
): Promise<({ ok: true; value: R } | { ok: false; err: unknown })[]> {
  const out = new Array<{ ok: true; value: R } | { ok: false; err: unknown }>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = { ok: true, value: await fn(items[i]!) };
      } catch (err) {
        out[i] = { ok: false, err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** The units of `names` as the registry has them (undefined: no such unit). Throws the API's error. */
export async function getUnits(
  client: ApiClient,
  names: readonly string[],
): Promise<Map<string, ApiUnit | undefined>> {
  const wanted = [...new Set(names)];
  const out = new Map<string, ApiUnit | undefined>(wanted.map((n) => [n, undefined]));
  if (wanted.length === 0) return out;
  if (!unsupported.has(client)) {
    try {
      const got = await Promise.all(
        chunks(wanted).map((c) => client.request<{ units?: ApiUnit[] }>('POST', BATCH.get, { names: c })),
      );
      for (const r of got) for (const u of r.body?.units ?? []) out.set(u.name, u);
      return out;
    } catch (err) {
      if (!noBatch(client, err)) throw err;
    }
  }
  const got = await mapPool(wanted, PARALLEL, (n) => getUnit(client, n));
  for (const [i, r] of got.entries()) {
    if (!r.ok) throw r.err;
    out.set(wanted[i]!, r.value);
  }
  return out;
}

/** The unit a batch error names: `units[3] (web@3.service): why`. */
const ITEM = /^units\[(\d+)\](?: \((.*?)\))?: ([\s\S]*)$/;

/**
 * Create, replace or set the desired state of units (fleet's PUT /fleet/v1/units/{name} for each),
 * in order. Throws UnitPutError naming the first unit the agent refused, with the agent's message
 * for that unit alone.
 */
export async function putUnits(client: ApiClient, units: readonly UnitPut[]): Promise<void> {
  if (units.length === 0) return;
  const written: string[] = [];
  if (!unsupported.has(client)) {
    const parts = chunks(units, (u) => JSON.stringify(u).length);
    try {
      for (const part of parts) {
        try {
          await client.request('POST', BATCH.put, { units: part });
        } catch (err) {
          if (err instanceof ApiError && err.status >= 400 && err.status < 500 && ITEM.test(err.message)) {
            const m = ITEM.exec(err.message)!;
            const unit = part[Number(m[1])]?.name ?? m[2] ?? '';
            throw new UnitPutError(unit, new ApiError(err.status, m[3]!), [...written]);
          }
          throw err;
        }
        written.push(...part.map((u) => u.name));
      }
      return;
    } catch (err) {
      if (err instanceof UnitPutError) throw err;
      if (written.length > 0 || !noBatch(client, err)) {
        throw new UnitPutError(units[written.length]!.name, err as Error, [...written]);
      }
    }
  }
  // fleet v1: one PUT per unit, in flight PARALLEL at once; the first failure in order is reported.
  const done = await mapPool(units, PARALLEL, (u) => client.request('PUT', unitPath(u.name), u));
  const firstBad = done.findIndex((r) => !r.ok);
  if (firstBad >= 0) {
    const r = done[firstBad] as { ok: false; err: unknown };
    throw new UnitPutError(
      units[firstBad]!.name,
      r.err as Error,
      units.filter((_, i) => done[i]!.ok).map((u) => u.name),
    );
  }
}

export interface DestroyResult {
  destroyed: string[];
  missing: string[];
  /** Units the agent could not destroy, with why (fleet v1 fallback only; a batch fails whole). */
  failed: { name: string; err: Error }[];
}

/** Destroy units; names the registry does not have are `missing`. */
export async function destroyUnits(client: ApiClient, names: readonly string[]): Promise<DestroyResult> {
  const wanted = [...new Set(names)];
  const res: DestroyResult = { destroyed: [], missing: [], failed: [] };
  if (!unsupported.has(client)) {
    let i = 0;
    const parts = chunks(wanted);
    try {
      for (; i < parts.length; i++) {
        const r = await client.request<{ destroyed?: string[]; missing?: string[] }>('POST', BATCH.destroy, {
          names: parts[i],
        });
        res.destroyed.push(...(r.body?.destroyed ?? []));
        res.missing.push(...(r.body?.missing ?? []));
      }
      return res;
    } catch (err) {
      if (i > 0 || !noBatch(client, err)) {
        for (const n of parts.slice(i).flat()) res.failed.push({ name: n, err: err as Error });
        return res;
      }
    }
  }
  const done = await mapPool(wanted, PARALLEL, (n) => client.request('DELETE', unitPath(n)));
  for (const [i, r] of done.entries()) {
    const name = wanted[i]!;
    if (r.ok) res.destroyed.push(name);
    else if (r.err instanceof ApiError && r.err.status === 404) res.missing.push(name);
    else res.failed.push({ name, err: r.err as Error });
  }
  return res;
}
