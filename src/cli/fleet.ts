/**
 * Reading the fleet v1 API from the CLI (all pages), fleetctl's machine legends (`4d389537.../ip`),
 * and fleetctl's way of reporting an API failure: `<what failed>: <why>` on stderr, exit 1. Kept free
 * of the unit-file parser so the list commands start fast.
 */
import type { ApiMachine, ApiUnit, ApiUnitState } from '../api/fleet-v1.js';
import { ApiError, UnreachableError, type ApiClient } from './client.js';
import { CliExit } from './command.js';

export type { ApiMachine, ApiUnit, ApiUnitState };

export function shortId(id: string, full: boolean): string {
  return full ? id : `${id.slice(0, 8)}...`;
}

/** fleetctl's machineFullLegend: `<id>/<ip>`, or just the id when the machine has no IP (or is gone). */
export function machineLabel(
  id: string | undefined,
  machines: Map<string, ApiMachine>,
  full: boolean,
): string {
  if (!id) return '-';
  const ip = machines.get(id)?.primaryIP;
  return ip ? `${shortId(id, full)}/${ip}` : shortId(id, full);
}

export function byId(machines: ApiMachine[]): Map<string, ApiMachine> {
  return new Map(machines.map((m) => [m.id, m]));
}

/** fleet's job.IsGlobal: the last `[X-Fleet] Global=` value, truthy as true/yes/1/on/t (any case). */
export function isGlobal(u: ApiUnit): boolean {
  const values = (u.options ?? []).filter((o) => o.section === 'X-Fleet' && o.name === 'Global');
  const last = values[values.length - 1]?.value.toLowerCase();
  return last !== undefined && ['true', 'yes', '1', 'on', 't'].includes(last);
}

async function getAll<T>(client: ApiClient, path: string, key: string, query = ''): Promise<T[]> {
  const out: T[] = [];
  let token: string | undefined;
  do {
    const params = [query, token ? `nextPageToken=${encodeURIComponent(token)}` : '']
      .filter(Boolean)
      .join('&');
    const r = await client.request<Record<string, unknown>>('GET', params ? `${path}?${params}` : path);
    out.push(...((r.body?.[key] as T[] | undefined) ?? []));
    token = r.body?.nextPageToken as string | undefined;
  } while (token);
  return out;
}

export const listUnits = (c: ApiClient) => getAll<ApiUnit>(c, '/fleet/v1/units', 'units');
export const listMachines = (c: ApiClient) => getAll<ApiMachine>(c, '/fleet/v1/machines', 'machines');
export const listStates = (c: ApiClient, unitName?: string) =>
  getAll<ApiUnitState>(
    c,
    '/fleet/v1/state',
    'states',
    unitName === undefined ? '' : `unitName=${encodeURIComponent(unitName)}`,
  );

export const unitPath = (name: string) => `/fleet/v1/units/${encodeURIComponent(name)}`;

/** One unit, or undefined when the API says it does not exist. */
export async function getUnit(c: ApiClient, name: string): Promise<ApiUnit | undefined> {
  try {
    return (await c.request<ApiUnit>('GET', unitPath(name))).body;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}

/**
 * Run an API call; if the API fails or cannot be reached, report it fleetctl's way:
 * `<what>: <why>` on stderr and exit 1.
 */
export async function fleetCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError || err instanceof UnreachableError) {
      throw new CliExit(1, `${what}: ${err.message}`);
    }
    throw err;
  }
}
