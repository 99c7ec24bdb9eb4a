/**
 * What the unit commands share, after fleetctl (fleetctl/fleetctl.go): creating units from the
 * registry / local files / templates (lazyCreateUnits), setting desired states, and waiting for a
 * unit to reach a state (waitForState): bounded by default, unlike fleetctl, and failing early with
 * the engine's reason when a unit cannot be placed.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FlotillaError, isErrno } from '../lib/errors.js';
import type { DesiredState } from '../registry/types.js';
import {
  UnitFile,
  fleetRequirements,
  isInstanceName,
  mangleUnitName,
  templateName,
  type UnitOption,
} from '../unit/index.js';
import { ApiError, UnreachableError, type ApiClient } from './client.js';
import { batchKnown, getUnits, putUnits, UnitPutError, type UnitPut } from './batch.js';
import { CliExit, UsageError, type Context, type FlagSpec } from './command.js';
import {
  byId,
  fleetCall,
  getUnit,
  isGlobal,
  listMachines,
  listStates,
  listUnits,
  machineLabel,
  type ApiMachine,
  type ApiUnit,
} from './fleet.js';
import { sleep } from '../lib/backoff.js';

/** flotilla waits this many attempts (2 s each) by default; fleetctl waited forever. */
export const DEFAULT_BLOCK_ATTEMPTS = 15;

export const BLOCK_FLAGS: Record<string, FlagSpec> = {
  'no-block': {
    type: 'boolean',
    default: false,
    help: 'Do not wait until the units have reached the desired state',
  },
  'block-attempts': {
    type: 'string',
    default: String(DEFAULT_BLOCK_ATTEMPTS),
    value: 'N',
    help: 'Wait this many attempts (2 s each) for the desired state; 0 waits forever (fleetctl default: forever)',
  },
};

export const REPLACE_FLAGS: Record<string, FlagSpec> = {
  replace: {
    type: 'boolean',
    default: false,
    help: 'Replace the unit in the registry if it differs from the local file',
  },
  sign: { type: 'boolean', default: false, hidden: true, help: 'Deprecated, ignored' },
};

export function unitHash(u: ApiUnit): string {
  return UnitFile.fromOptions(u.options ?? []).hash();
}

/** The unit names of the arguments (fleetctl's unitNameMangle), or fleetctl's "No units given" (exit 0). */
export function unitArgs(ctx: Context): string[] {
  if (ctx.args.length === 0) throw new CliExit(0, 'No units given');
  return ctx.args.map(mangleName);
}

export function mangleName(arg: string): string {
  try {
    return mangleUnitName(arg);
  } catch (err) {
    if (err instanceof FlotillaError) throw new CliExit(1, err.message);
    throw err;
  }
}

/** The local file an argument names: fleetctl appends `.service` to the path when it has no unit type. */
function localPath(arg: string, name: string): string {
  return basename(arg) === name ? arg : `${arg}.service`;
}

/** Read and parse a local unit file; undefined when there is none. */
function readLocal(path: string, what: string): UnitFile | undefined {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw new CliExit(
      1,
      `Error creating units: failed getting Unit(${what}) from file: ${(err as Error).message}`,
    );
  }
  try {
    return UnitFile.parse(text);
  } catch (err) {
    throw new CliExit(
      1,
      `Error creating units: failed getting Unit(${what}) from file: ${(err as Error).message}`,
    );
  }
}

const toOptions = (f: UnitFile): UnitOption[] =>
  f.options.map((o) => ({ section: o.section, name: o.name, value: o.value }));

export interface LazyResult {
  /** Every unit named, as the registry has it now. */
  units: Map<string, ApiUnit>;
  /** The names in argument order (duplicates removed). */
  names: string[];
}

/**
 * fleetctl's lazyCreateUnits. For each argument: the registry's unit if there is one (with a
 * warning when the local file differs, or a replacement with `--replace` when the unit's desired
 * state allows it for `command`); else the local file; else, for an instance, the template from the
 * registry, else the template file beside the argument. A created unit prints `Unit X inactive`.
 */
export async function lazyCreateUnits(
  ctx: Context,
  client: ApiClient,
  command: 'submit' | 'load' | 'start' | 'restart',
): Promise<LazyResult> {
  const replace = ctx.flags.replace === true;
  const allowReplaceIn: Record<typeof command, DesiredState[]> = {
    submit: ['inactive'],
    load: ['inactive', 'loaded'],
    start: ['inactive', 'loaded', 'launched'],
    restart: [],
  };
  if (ctx.flags.sign === true) {
    ctx.io.err('WARNING: The signed/verified units feature is DEPRECATED and cannot be used.\n');
  }
  const units = new Map<string, ApiUnit>();
  const names: string[] = [];
  // The registry lookups go out together and the creates in one batch after every argument is
  // resolved, so a bad unit writes nothing (within one request: src/cli/batch.ts). Output is kept
  // in argument order and printed once the writes are done.
  const argNames = [...new Set(ctx.args.map((a) => mangleName(a)))];
  const prefetched = await fleetCall(`Error retrieving Unit(${argNames[0] ?? ''}) from Registry`, () =>
    getUnits(client, argNames),
  );
  const lines: { stream: 'out' | 'err'; text: string; creates?: string }[] = [];
  const out = (text: string) => lines.push({ stream: 'out', text });
  const err = (text: string) => lines.push({ stream: 'err', text });
  const creates: UnitPut[] = [];
  const create = (name: string, file: UnitFile) => {
    const unit = planCreate(name, file, err);
    creates.push({ name, options: unit.options! });
    units.set(name, unit);
    // fleetctl waits for a created unit to report inactive, which the API does at once.
    lines.push({
      stream: 'out',
      text: isGlobal(unit) ? `Unit ${name} \n` : `Unit ${name} inactive\n`,
      creates: name,
    });
  };
  const templates = new Map<string, Promise<ApiUnit | undefined>>(); // one lookup per template
  try {
    for (const arg of ctx.args) {
      const name = mangleName(arg);
      if (units.has(name)) continue;
      names.push(name);
      const path = localPath(arg, name);
      const existing = prefetched.get(name);
      if (existing) {
        // Compare with the local file, or for an instance with the local template file.
        let local = readLocal(path, path);
        let from = 'unit file';
        if (!local && isInstanceName(name)) {
          local = readLocal(join(dirname(path), templateName(name)), path);
          from = 'template unit file';
        }
        if (!local || local.hash() === unitHash(existing)) {
          if (replace && local) out(`Found same Unit(${name}) in Registry, nothing to do\n`);
          units.set(name, existing);
          continue;
        }
        if (!replace) {
          err(
            `WARNING: Unit ${name} in registry differs from local ${from} ${path}. Add --replace to override.\n`,
          );
          units.set(name, existing);
          continue;
        }
        const desired = existing.desiredState ?? 'inactive';
        if (!allowReplaceIn[command].includes(desired)) {
          err(`Warning: can not replace Unit(${name}) in state '${desired}', use the appropriate command\n`);
          units.set(name, existing);
          continue;
        }
        create(name, local);
        continue;
      }
      let file = readLocal(path, path);
      if (!file) {
        if (!isInstanceName(name)) {
          throw new CliExit(
            1,
            `Error creating units: unable to find Unit(${name}) in Registry or on filesystem`,
          );
        }
        const tpl = templateName(name);
        let lookup = templates.get(tpl);
        if (!lookup) templates.set(tpl, (lookup = getUnit(client, tpl)));
        const pending = lookup;
        const inRegistry = await fleetCall(
          `Error retrieving template Unit(${tpl}) from Registry`,
          () => pending,
        );
        if (inRegistry?.options) file = UnitFile.fromOptions(inRegistry.options);
        else file = readLocal(join(dirname(path), tpl), path);
        if (!file) {
          throw new CliExit(
            1,
            `Error creating units: failed getting Unit(${path}) from template: unable to find template Unit(${tpl}) in Registry or on filesystem`,
          );
        }
      }
      create(name, file);
    }
    // No desiredState: a new unit starts inactive, a replaced one goes back to inactive (fleet).
    await putUnits(client, creates);
  } catch (e) {
    // What was written is reported as written; nothing after the failure is.
    const written = new Set(e instanceof UnitPutError ? e.written : []);
    for (const l of lines) if (!l.creates || written.has(l.creates)) ctx.io[l.stream](l.text);
    if (e instanceof UnitPutError) {
      if (e.cause instanceof ApiError) throw new CliExit(1, `Error creating units: ${e.cause.message}`);
      throw new CliExit(1, `Error creating units: failed creating unit ${e.unit}: ${e.cause.message}`);
    }
    throw e;
  }
  for (const l of lines) ctx.io[l.stream](l.text);
  return { units, names };
}

/** A unit about to be created from `file`, with fleetctl-silent scheduling problems warned about. */
function planCreate(name: string, file: UnitFile, warn: (text: string) => void): ApiUnit {
  const options = toOptions(file);
  // fleetctl says nothing about a unit that can never be scheduled (MachineOf=%n, a MachineOf peer
  // that is no unit name, a glob that never matches, an unknown [X-Fleet] key): we warn on stderr.
  // Forbidden combinations throw here too; the agent answers those with a 400 at the write.
  let warnings: string[] = [];
  try {
    warnings = fleetRequirements(name, file).warnings;
  } catch {
    warnings = [];
  }
  for (const w of warnings) warn(`Warning: unit ${name}: ${w}\n`);
  return { name, options, desiredState: 'inactive', currentState: 'inactive' };
}

/** Attempts to wait: undefined = do not wait (--no-block), Infinity = forever (0 or less). */
export function blockAttempts(ctx: Context): number | undefined {
  if (ctx.flags['no-block'] === true) return undefined;
  const raw = String(ctx.flags['block-attempts'] ?? DEFAULT_BLOCK_ATTEMPTS);
  if (!/^-?\d+$/.test(raw))
    throw new UsageError(`invalid argument ${JSON.stringify(raw)} for "--block-attempts" flag`);
  const n = Number(raw);
  return n <= 0 ? Infinity : n;
}

/** Machines by ID, fetched once and again only when a unit names a machine not seen yet. */
export class MachineCache {
  private map: Map<string, ApiMachine> | undefined;
  constructor(private readonly client: ApiClient) {}
  async get(id?: string): Promise<Map<string, ApiMachine>> {
    if (!this.map || (id && !this.map.has(id))) {
      this.map = byId(await listMachines(this.client).catch(() => [] as ApiMachine[]));
    }
    return this.map;
  }
}

/** Up to this many pending units are polled one by one; more are read with one list. */
const POLL_ONE_BY_ONE = 20;

export interface WaitFailure {
  name: string;
  why: string;
}

/**
 * Wait until each unit's current state is `state` (250 ms polls, 2 s per attempt); a global unit
 * counts its desired state, as fleetctl does. A unit the engine reports as unplaceable fails once
 * it has had one attempt, with the engine's reason. Calls `onReached` as each unit gets there;
 * returns the units that did not, with why.
 */
export async function waitForState(
  client: ApiClient,
  names: string[],
  state: DesiredState,
  attempts: number,
  onReached: (u: ApiUnit) => Promise<void> | void,
  /** Container units: pull progress and failures with a reason (src/cli/commands/container.ts). */
  watch?: { poll(): Promise<{ name: string; why: string }[]>; done(): void },
): Promise<WaitFailure[]> {
  const pending = new Set(names);
  const failed: WaitFailure[] = [];
  const started = Date.now();
  const deadline = started + attempts * 2000;
  while (pending.size > 0) {
    for (const f of watch ? await watch.poll() : []) {
      if (!pending.has(f.name)) continue;
      failed.push(f);
      pending.delete(f.name);
    }
    let seen: Map<string, ApiUnit | undefined> | undefined;
    try {
      const list = [...pending];
      // Without the batch API (an older agent, fleet), many units are read with one list.
      if (list.length > POLL_ONE_BY_ONE && !batchKnown(client)) {
        const all = new Map((await listUnits(client)).map((u) => [u.name, u]));
        seen = new Map(list.map((n) => [n, all.get(n)]));
      } else seen = await getUnits(client, list);
    } catch (err) {
      // fleetctl logs and retries an API failure while waiting; so do we, within the deadline.
      if (Date.now() >= deadline) {
        for (const name of pending) {
          failed.push({ name, why: `unable to read unit ${name}: ${(err as Error).message}` });
        }
        break;
      }
    }
    for (const [name, u] of seen ?? []) {
      if (!u) {
        failed.push({ name, why: `unit ${name} was destroyed while waiting` });
        pending.delete(name);
        continue;
      }
      const current = isGlobal(u) ? u.desiredState : (u.currentState ?? 'inactive');
      if (current === state) {
        await onReached(u);
        pending.delete(name);
      } else if (u.reason && !u.machineID && state !== 'inactive' && Date.now() - started >= 2000) {
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

/** `Unit X launched on 4d389537.../10.0.0.1` (fleetctl's assertUnitState). */
export async function reachedLine(u: ApiUnit, machines: MachineCache): Promise<string> {
  if (isGlobal(u)) return `Unit ${u.name} ${u.currentState ?? ''}\n`;
  let msg = `Unit ${u.name} ${u.currentState ?? 'inactive'}`;
  if (u.machineID) msg += ` on ${machineLabel(u.machineID, await machines.get(u.machineID), false)}`;
  return `${msg}\n`;
}

/**
 * Set each unit's desired state to `target` (skipping units already there) and wait for the
 * non-global ones. Prints fleetctl's lines: `Triggered global unit X verb`, `Triggered unit X verb`
 * (--no-block), `Unit X target on …`, `Error waiting for units: …`. Returns the names it acted on
 * and the failures. An API failure setting a state exits 1 with `errPrefix` (`%s` = the unit).
 */
export interface TransitionOptions {
  units: ApiUnit[];
  target: DesiredState;
  /** The command's verb, for messages (`start`, `stop`, `load`, `unload`). */
  verb: string;
  /** --block-attempts; undefined waits the default bound. */
  attempts: number | undefined;
  /** Prefix of the error line when setting a desired state fails (`%s` is the unit). */
  errPrefix: string;
}

export async function transition(
  ctx: Context,
  client: ApiClient,
  { units, target, verb, attempts, errPrefix }: TransitionOptions,
): Promise<{ acted: string[]; failed: WaitFailure[] }> {
  const wait: string[] = [];
  const acted: string[] = [];
  const todo = units.filter((u) => u.desiredState !== target);
  let written: Set<string> | undefined;
  let failure: UnitPutError | undefined;
  try {
    await putUnits(
      client,
      todo.map((u) => ({ name: u.name, desiredState: target })),
    );
  } catch (err) {
    if (!(err instanceof UnitPutError)) throw err;
    failure = err;
    written = new Set(err.written);
  }
  for (const u of todo) {
    if (written && !written.has(u.name)) break;
    acted.push(u.name);
    if (isGlobal(u)) ctx.io.out(`Triggered global unit ${u.name} ${verb}\n`);
    else if (attempts === undefined) ctx.io.out(`Triggered unit ${u.name} ${verb}\n`);
    else wait.push(u.name);
  }
  if (failure) {
    const { cause, unit } = failure;
    if (cause instanceof ApiError || cause instanceof UnreachableError)
      throw new CliExit(1, `${errPrefix.replace('%s', unit)}: ${cause.message}`);
    throw cause;
  }
  if (attempts === undefined || wait.length === 0) return { acted, failed: [] };
  const machines = new MachineCache(client);
  // A blocking start of container units shows pull progress and fails at once on a pull failure.
  const watch =
    target === 'launched'
      ? (await import('./commands/container.js')).pullWatcher(ctx, client, wait)
      : undefined;
  const failed = await waitForState(
    client,
    wait,
    target,
    attempts,
    async (u) => {
      watch?.done();
      ctx.io.out(await reachedLine(u, machines));
    },
    watch,
  );
  for (const f of failed) ctx.io.err(`Error waiting for units: ${f.why}\n`);
  return { acted, failed };
}

/** Wait until no machine reports any of `names` any more (destroy). */
export async function waitForGone(
  client: ApiClient,
  names: string[],
  attempts: number,
): Promise<WaitFailure[]> {
  const pending = new Set(names);
  const deadline = Date.now() + attempts * 2000;
  while (pending.size > 0) {
    try {
      const states =
        pending.size <= POLL_ONE_BY_ONE
          ? (await Promise.all([...pending].map((n) => listStates(client, n)))).flat()
          : await listStates(client);
      const reported = new Set(states.map((s) => s.name));
      for (const n of [...pending]) if (!reported.has(n)) pending.delete(n);
    } catch {
      /* retried until the deadline */
    }
    if (pending.size === 0 || Date.now() >= deadline) break;
    await sleep(250);
  }
  return [...pending].map((name) => ({
    name,
    why: `timed out waiting for unit ${name} to be removed from its machine`,
  }));
}
