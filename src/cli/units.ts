/**
 * What the unit commands share, after fleetctl (fleetctl/fleetctl.go): reading units, machines and
 * states from the API, creating units from the registry / local files / templates (lazyCreateUnits),
 * and waiting for a target state (waitForState) — bounded by default, unlike fleetctl.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ApiMachine, ApiUnit, ApiUnitState } from '../api/fleet-v1.js';
import { FlotillaError, isErrno } from '../lib/errors.js';
import type { DesiredState } from '../registry/types.js';
import { UnitFile, isInstanceName, mangleUnitName, templateName } from '../unit/index.js';
import { ApiError, type ApiClient } from './client.js';
import type { Context, FlagSpec } from './command.js';

export const BLOCK_FLAGS: Record<string, FlagSpec> = {
  'no-block': {
    type: 'boolean',
    default: false,
    help: 'Do not wait until the units have reached the desired state',
  },
  'block-attempts': {
    type: 'string',
    default: '15',
    value: 'N',
    help: 'Wait this many attempts (2 s each) for the desired state; 0 waits forever (fleetctl default: forever)',
  },
};

export function shortId(id: string, full: boolean): string {
  return full ? id : `${id.slice(0, 8)}...`;
}

export function machineLabel(id: string | undefined, machines: ApiMachine[], full: boolean): string {
  if (!id) return '-';
  const ip = machines.find((m) => m.id === id)?.primaryIP;
  return ip ? `${shortId(id, full)}/${ip}` : shortId(id, full);
}

async function getAll<T>(client: ApiClient, path: string, key: string): Promise<T[]> {
  const out: T[] = [];
  let token: string | undefined;
  do {
    const q = token ? `?nextPageToken=${encodeURIComponent(token)}` : '';
    const r = await client.request<Record<string, unknown>>('GET', `${path}${q}`);
    out.push(...((r.body?.[key] as T[] | undefined) ?? []));
    token = r.body?.nextPageToken as string | undefined;
  } while (token);
  return out;
}

export const listUnits = (c: ApiClient) => getAll<ApiUnit>(c, '/fleet/v1/units', 'units');
export const listMachines = (c: ApiClient) => getAll<ApiMachine>(c, '/fleet/v1/machines', 'machines');
export const listStates = (c: ApiClient) => getAll<ApiUnitState>(c, '/fleet/v1/state', 'states');

export async function getUnit(c: ApiClient, name: string): Promise<ApiUnit | undefined> {
  try {
    return (await c.request<ApiUnit>('GET', `/fleet/v1/units/${encodeURIComponent(name)}`)).body;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}

export function isGlobal(u: ApiUnit): boolean {
  return (u.options ?? []).some(
    (o) =>
      o.section === 'X-Fleet' &&
      o.name === 'Global' &&
      ['true', 'yes', '1', 'on', 't'].includes(o.value.toLowerCase()),
  );
}

export function unitHash(u: ApiUnit): string {
  return UnitFile.fromOptions(u.options ?? []).hash();
}

/** Read a local unit file: the path as given, or for an instance its template beside it. */
function readLocal(arg: string, name: string): UnitFile | undefined {
  const tryRead = (p: string) => {
    try {
      return UnitFile.parse(readFileSync(p));
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'EISDIR')) return undefined;
      if (err instanceof FlotillaError)
        throw new FlotillaError(err.code, `${p}: ${err.message}`, err.details);
      throw err;
    }
  };
  const direct = tryRead(arg);
  if (direct) return direct;
  if (basename(arg) !== name) {
    const named = tryRead(join(dirname(arg), name));
    if (named) return named;
  }
  return undefined;
}

export interface CreatedUnit {
  name: string;
  unit: ApiUnit;
}

/**
 * fleetctl's lazyCreateUnits: for each argument, use the registry's unit; else the local file; else
 * (for an instance) the registry's template, else the template file beside the argument. With
 * `replace`, a differing local file replaces the registry copy (allowed states: see fleet.md).
 */
export async function lazyCreateUnits(
  ctx: Context,
  client: ApiClient,
  args: string[],
  opts: { replace: boolean; desired?: DesiredState; allowReplaceIn: DesiredState[] },
): Promise<CreatedUnit[]> {
  const out: CreatedUnit[] = [];
  for (const arg of args) {
    const name = mangleUnitName(arg);
    const existing = await getUnit(client, name);
    if (existing && !opts.replace) {
      out.push({ name, unit: existing });
      continue;
    }
    let file = readLocal(arg, name);
    if (!file && existing) {
      out.push({ name, unit: existing });
      continue;
    }
    if (!file && isInstanceName(name)) {
      const tpl = templateName(name);
      const inRegistry = await getUnit(client, tpl);
      if (inRegistry?.options) file = UnitFile.fromOptions(inRegistry.options);
      else file = readLocal(join(dirname(arg), tpl), tpl);
      if (!file) {
        throw new FlotillaError(
          'E_NOT_FOUND',
          `failed getting Unit(${name}) from template: unable to find template Unit(${tpl}) in Registry or on filesystem`,
        );
      }
    }
    if (!file)
      throw new FlotillaError('E_NOT_FOUND', `unable to find Unit(${name}) in Registry or on filesystem`);
    if (existing) {
      if (unitHash(existing) === file.hash()) {
        ctx.io.out(`Found same Unit(${name}) in Registry, nothing to do\n`);
        out.push({ name, unit: existing });
        continue;
      }
      if (!opts.allowReplaceIn.includes(existing.desiredState ?? 'inactive')) {
        ctx.io.err(
          `Warning: can not replace Unit(${name}) in state '${existing.desiredState}', use the appropriate command\n`,
        );
        out.push({ name, unit: existing });
        continue;
      }
    }
    const options = file.options.map((o) => ({ section: o.section, name: o.name, value: o.value }));
    try {
      await client.request('PUT', `/fleet/v1/units/${encodeURIComponent(name)}`, {
        name,
        options,
        desiredState: 'inactive',
      });
    } catch (err) {
      if (err instanceof ApiError)
        throw new FlotillaError('E_UNIT_OPTIONS', `Error creating units: ${err.message}`);
      throw err;
    }
    out.push({ name, unit: { name, options, desiredState: 'inactive' } });
  }
  return out;
}

export async function setDesired(client: ApiClient, name: string, desiredState: DesiredState): Promise<void> {
  await client.request('PUT', `/fleet/v1/units/${encodeURIComponent(name)}`, { name, desiredState });
}

export function blockAttempts(ctx: Context): number | undefined {
  if (ctx.flags['no-block'] === true) return undefined;
  const raw = String(ctx.flags['block-attempts'] ?? '15');
  const n = Number(raw);
  if (!Number.isInteger(n))
    throw new FlotillaError('E_USAGE', `--block-attempts: ${JSON.stringify(raw)} is not a whole number`);
  return n <= 0 ? Infinity : n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait until each unit's current state is `state` (250 ms polls, 2 s per attempt). A unit the engine
 * reports as unplaceable fails at once with the engine's reason, once it has had one attempt.
 * Returns the names that did not get there, with why.
 */
export async function waitForState(
  ctx: Context,
  client: ApiClient,
  names: string[],
  state: DesiredState,
  attempts: number,
  onReached: (u: ApiUnit, machines: ApiMachine[]) => void,
  /** Container units: pull progress and failures with a reason (src/cli/commands/container.ts). */
  watch?: { poll(): Promise<{ name: string; why: string }[]>; done(): void },
): Promise<{ name: string; why: string }[]> {
  const pending = new Set(names);
  const failed: { name: string; why: string }[] = [];
  const deadline = Date.now() + attempts * 2000;
  const started = Date.now();
  while (pending.size > 0) {
    const [units, machines, watched] = await Promise.all([
      listUnits(client),
      listMachines(client),
      watch ? watch.poll() : [],
    ]);
    for (const f of watched) {
      if (!pending.has(f.name)) continue;
      failed.push(f);
      pending.delete(f.name);
    }
    for (const name of [...pending]) {
      const u = units.find((x) => x.name === name);
      if (!u) {
        failed.push({ name, why: `unit ${name} was destroyed while waiting` });
        pending.delete(name);
      } else if ((u.currentState ?? 'inactive') === state) {
        onReached(u, machines);
        pending.delete(name);
      } else if (u.reason && Date.now() - started >= 2000) {
        failed.push({ name, why: `unit ${name} not scheduled: ${u.reason}` });
        pending.delete(name);
      }
    }
    if (pending.size === 0) break;
    if (Date.now() >= deadline) {
      watch?.done();
      for (const name of pending)
        failed.push({ name, why: `timed out waiting for unit ${name} to report state ${state}` });
      break;
    }
    await sleep(250);
  }
  watch?.done();
  return failed;
}
