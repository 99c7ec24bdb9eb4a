/**
 * fleet's `[X-Fleet]` scheduling options (`job/job.go`, `unit/unit.go`, `api.ValidateOptions`).
 *
 * Value rules, as fleet v1.0:
 * - A value that starts and ends with `"` holds several values, split on spaces outside quotes
 *   with the quotes removed (`MachineMetadata="region=us-east" "disk=ssd"`). Any other value is
 *   one value, quotes kept. `Conflicts`/`X-Conflicts` values are further split on whitespace.
 * - Repeating a key appends. Deprecated aliases: `X-ConditionMachineID` and then
 *   `X-ConditionMachineBootID` (used only when `MachineID` is absent), `X-ConditionMachineOf`,
 *   `X-ConditionMachineMetadata`, `X-Conflicts`; alias values come before the modern key's.
 * - `%n %N %p %i` are expanded (with the unit's name) in [X-Fleet] values only.
 * - `MachineID`: the first value. `Global`: the last value, truthy when it is (any case) true, yes,
 *   1, on or t. `MachineMetadata`: `key=value` with exactly one "=" and both sides non-empty.
 *
 * Deliberate differences (each documented where it happens):
 * - `Key=` (empty value) resets the values collected so far for that key, as systemd does for
 *   lists; fleet kept "" as a value (so `MachineID=` pinned the unit to no machine at all).
 * - Empty strings produced by a quoted multi-value (`"a"  "b"`, `""`) are dropped.
 * - Lists are de-duplicated, first occurrence kept. Validation checks pairs in file order, where
 *   fleet iterated Go sets (random order) and so could report a different pair first.
 * - Extra warnings (the value is still used exactly as fleet would): several MachineIDs, an
 *   alias shadowed by MachineID, malformed metadata, invalid glob, whitespace inside a Replaces
 *   pattern, a MachineOf peer that is not a valid unit name.
 */
import { FlotillaError } from '../lib/errors.js';
import type { UnitFile } from './file.js';
import { globMatch, isValidGlob } from './glob.js';
import { parseUnitName, validateUnitName, type UnitNameInfo } from './name.js';
import { goFields, goQuote } from './text.js';

export { globMatch, isValidGlob } from './glob.js';

/** The section holding fleet's scheduling options. */
export const FLEET_SECTION = 'X-Fleet';

/** Every key fleet recognises in [X-Fleet]; others produce a warning and are ignored. */
export const FLEET_KEYS = [
  'MachineID',
  'X-ConditionMachineID',
  'X-ConditionMachineBootID',
  'MachineOf',
  'X-ConditionMachineOf',
  'MachineMetadata',
  'X-ConditionMachineMetadata',
  'Conflicts',
  'X-Conflicts',
  'Global',
  'Replaces',
] as const;
export type FleetKey = (typeof FLEET_KEYS)[number];

/** The scheduling requirements of one unit, with specifiers expanded. */
export interface FleetRequirements {
  /** Machine the unit must run on (full or 8-char short ID, as written). */
  machineID?: string;
  /** Units that must already be scheduled on the chosen machine (exact names). */
  machineOf: string[];
  /** Required machine metadata: every key must match one of its values (OR within, AND across). */
  metadata: Record<string, string[]>;
  /** `path.Match` globs of units that may not share a machine with this one. */
  conflicts: string[];
  /** Run on every eligible machine instead of being scheduled. */
  global: boolean;
  /** `path.Match` globs of units this one evicts from its machine. */
  replaces: string[];
  /** Human-readable notes: unknown keys (fleet's wording) and ignored values. */
  warnings: string[];
}

/** fleet `parseMultivalueLine` (minus the empty strings, see the module comment). */
export function parseMultiValue(value: string): string[] {
  if (!value.startsWith('"') || !value.endsWith('"')) return [value];
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of value) {
    if (ch === '"') {
      quoted = !quoted;
    } else if (ch === ' ' && !quoted) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out.filter((v) => v !== '');
}

/** fleet `unitPrintf`: `%n` full name, `%N` name without type, `%p` prefix, `%i` instance. */
export function expandSpecifiers(value: string, info: UnitNameInfo): string {
  return value.replace(/%[nNpi]/g, (m) => {
    if (m === '%n') return info.fullName;
    if (m === '%N') return info.name;
    if (m === '%p') return info.prefix;
    return info.instance;
  });
}

/** fleet `isTruthyValue`. */
export function isTruthy(value: string): boolean {
  return ['true', 'yes', '1', 'on', 't'].includes(value.toLowerCase());
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}

function optionsError(unit: string, message: string, extra: Record<string, unknown>): FlotillaError {
  return new FlotillaError('E_UNIT_OPTIONS', message, { unit, ...extra });
}

/**
 * Reads the [X-Fleet] section of `unit` for the unit called `name` and checks the combinations
 * fleet refuses at submit time. Throws E_UNIT_NAME for an invalid `name`, and E_UNIT_OPTIONS with
 * fleet's exact message (first failing rule, in fleet's order) for a rejected combination:
 * peer matches a Conflicts/Replaces glob, then MachineID with MachineOf/Conflicts/Global/Replaces,
 * Global with MachineOf/Replaces, Conflicts with Replaces. Pure.
 */
export function fleetRequirements(name: string, unit: UnitFile): FleetRequirements {
  const info = parseUnitName(name);
  const warnings: string[] = [];
  const byKey = new Map<FleetKey, string[]>();
  const unknown = new Set<string>();
  for (const o of unit.options) {
    if (o.section !== FLEET_SECTION) continue;
    const key = FLEET_KEYS.find((k) => k === o.name);
    if (key === undefined) {
      if (!unknown.has(o.name))
        warnings.push(`unrecognized requirement in [X-Fleet] section: ${goQuote(o.name)}`);
      unknown.add(o.name);
      continue;
    }
    if (o.value === '') {
      byKey.set(key, []);
      continue;
    }
    const values = parseMultiValue(o.value).map((v) => expandSpecifiers(v, info));
    byKey.set(key, [...(byKey.get(key) ?? []), ...values]);
  }
  const list = (...keys: FleetKey[]): string[] => keys.flatMap((k) => byKey.get(k) ?? []);

  const req: FleetRequirements = {
    machineOf: [],
    metadata: {},
    conflicts: [],
    global: false,
    replaces: [],
    warnings,
  };

  const idKeys: FleetKey[] = ['MachineID', 'X-ConditionMachineID', 'X-ConditionMachineBootID'];
  const idKey = idKeys.find((k) => (byKey.get(k) ?? []).length > 0);
  if (idKey !== undefined) {
    const ids = list(idKey);
    req.machineID = ids[0] ?? '';
    if (ids.length > 1)
      warnings.push(`${idKey} has ${ids.length} values; only the first (${goQuote(req.machineID)}) is used`);
    for (const other of idKeys.slice(idKeys.indexOf(idKey) + 1)) {
      if (list(other).length > 0) warnings.push(`${other} is ignored because ${idKey} is set`);
    }
  }

  req.machineOf = dedupe(list('X-ConditionMachineOf', 'MachineOf'));
  for (const peer of req.machineOf) {
    if (peer === name) {
      warnings.push(
        `MachineOf names the unit itself (${goQuote(peer)}, e.g. from %n): a unit cannot wait for itself, so it can never be scheduled`,
      );
      continue;
    }
    try {
      validateUnitName(peer);
    } catch (err) {
      warnings.push(
        `MachineOf peer ${goQuote(peer)} is not a valid unit name (${(err as Error).message}); the unit cannot be scheduled`,
      );
    }
  }

  const metadata: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (const pair of list('X-ConditionMachineMetadata', 'MachineMetadata')) {
    const parts = pair.split('=');
    const [k, v] = parts;
    if (parts.length !== 2 || !k || !v) {
      warnings.push(`MachineMetadata value ${goQuote(pair)} ignored: expected key=value`);
      continue;
    }
    const values = (metadata[k] ??= []);
    if (!values.includes(v)) values.push(v);
  }
  req.metadata = metadata;

  req.conflicts = dedupe(list('X-Conflicts', 'Conflicts').flatMap(goFields));
  req.replaces = dedupe(list('Replaces'));
  for (const r of req.replaces) {
    if (goFields(r).length > 1) {
      warnings.push(
        `Replaces pattern ${goQuote(r)} contains whitespace and is one pattern; quote each ("a" "b") for several`,
      );
    }
  }
  for (const [field, patterns] of [
    ['Conflicts', req.conflicts],
    ['Replaces', req.replaces],
  ] as const) {
    for (const p of patterns) {
      if (!isValidGlob(p))
        warnings.push(`${field} pattern ${goQuote(p)} is not a valid glob and never matches`);
    }
  }

  const globals = list('Global');
  req.global = globals.length > 0 && isTruthy(globals[globals.length - 1] ?? '');

  validateCombination(name, req);
  return req;
}

/** fleet `api.ValidateOptions`' rules, in its order. */
function validateCombination(name: string, req: FleetRequirements): void {
  for (const peer of req.machineOf) {
    for (const conflict of req.conflicts) {
      if (globMatch(conflict, peer)) {
        throw optionsError(
          name,
          `unresolvable requirements: peer ${goQuote(peer)} matches conflict ${goQuote(conflict)}`,
          {
            peer,
            conflict,
          },
        );
      }
    }
  }
  for (const peer of req.machineOf) {
    for (const replace of req.replaces) {
      if (globMatch(replace, peer)) {
        throw optionsError(
          name,
          `unresolvable requirements: peer ${goQuote(peer)} matches replace ${goQuote(replace)}`,
          {
            peer,
            replace,
          },
        );
      }
    }
  }
  const hasID = req.machineID !== undefined;
  const hasPeers = req.machineOf.length > 0;
  const hasConflicts = req.conflicts.length > 0;
  const hasReplaces = req.replaces.length > 0;
  const rules: [boolean, string, string[]][] = [
    [hasID && hasPeers, 'MachineID cannot be used with Peers', ['MachineID', 'MachineOf']],
    [hasID && hasConflicts, 'MachineID cannot be used with Conflicts', ['MachineID', 'Conflicts']],
    [hasID && req.global, 'MachineID cannot be used with Global', ['MachineID', 'Global']],
    [hasID && hasReplaces, 'MachineID cannot be used with Replaces', ['MachineID', 'Replaces']],
    [req.global && hasPeers, 'Global cannot be used with Peers', ['Global', 'MachineOf']],
    [req.global && hasReplaces, 'Global cannot be used with Replaces', ['Global', 'Replaces']],
    [hasConflicts && hasReplaces, 'Conflicts cannot be used with Replaces', ['Conflicts', 'Replaces']],
  ];
  for (const [broken, message, fields] of rules) {
    if (broken) throw optionsError(name, message, { fields });
  }
}
