/**
 * D-Bus values → plain JavaScript, at the adapter boundary.
 *
 * dbus-next returns `t`/`x` (uint64/int64) as native `bigint` and wraps every property in a
 * `Variant { signature, value }`. Nothing past this module sees either: 64-bit values become numbers
 * (exact up to 2^53; systemd's "infinity"/"unset" sentinel UINT64_MAX becomes `null`), timestamps (µs
 * since the epoch, 0 = never) become milliseconds since the epoch or `null`, and everything is
 * `JSON.stringify`-safe. `jsonReplacer` is a last line of defence for anything else.
 */
import type { UnitState } from './manager.js';

export const UINT64_MAX = 0xffff_ffff_ffff_ffffn;

interface VariantLike {
  signature: string;
  value: unknown;
}

export function isVariant(v: unknown): v is VariantLike {
  return (
    typeof v === 'object' && v !== null && 'signature' in v && 'value' in v && typeof v.signature === 'string'
  );
}

/** Strips Variant wrappers (recursively) and converts bigints. Buffers become arrays of bytes. */
export function plain(v: unknown): unknown {
  if (isVariant(v)) return plain(v.value);
  if (typeof v === 'bigint') return bigToPlain(v);
  if (Buffer.isBuffer(v)) return [...v];
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plain(x);
    return out;
  }
  return v;
}

/** A bigint as a number when exact, else as a decimal string (never loses digits silently). */
export function bigToPlain(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(v)
    : v.toString();
}

/** uint64 → number; UINT64_MAX ("infinity", "unset") → null. Values above 2^53 lose precision. */
export function u64(v: unknown): number | null {
  const x = unwrap(v);
  if (typeof x === 'bigint') return x === UINT64_MAX ? null : Number(x);
  if (typeof x === 'number') return Number.isFinite(x) ? x : null;
  return null;
}

/** µs since the epoch → ms since the epoch (fractional); 0 and UINT64_MAX → null. */
export function usToMs(v: unknown): number | null {
  const x = unwrap(v);
  let us: bigint;
  if (typeof x === 'bigint') us = x;
  else if (typeof x === 'number' && Number.isFinite(x)) us = BigInt(Math.trunc(x));
  else return null;
  if (us === 0n || us === UINT64_MAX) return null;
  // Split to keep µs precision: ms part is exact, the remainder is < 1000.
  return Number(us / 1000n) + Number(us % 1000n) / 1000;
}

/** ms since the epoch (or null) → ISO 8601 with ms precision (or null). */
export function msToIso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function str(v: unknown): string | null {
  const x = unwrap(v);
  return typeof x === 'string' ? x : null;
}

export function int(v: unknown): number | null {
  const x = unwrap(v);
  if (typeof x === 'number') return x;
  if (typeof x === 'bigint') return Number(x);
  return null;
}

export function bool(v: unknown): boolean | null {
  const x = unwrap(v);
  return typeof x === 'boolean' ? x : null;
}

/** `ay` (e.g. InvocationID) → lower-case hex, empty → null. */
export function hex(v: unknown): string | null {
  const x = unwrap(v);
  let bytes: number[] | undefined;
  if (Buffer.isBuffer(x)) bytes = [...x];
  else if (Array.isArray(x) && x.every((b) => typeof b === 'number')) bytes = x;
  if (!bytes || bytes.length === 0) return null;
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
}

function unwrap(v: unknown): unknown {
  return isVariant(v) ? unwrap(v.value) : v;
}

/** `JSON.stringify(x, jsonReplacer)` never throws on bigint (number when exact, else string). */
export function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? bigToPlain(value) : value;
}

function activeState(v: unknown): UnitState['activeState'] {
  const s = str(v);
  return (s ?? 'inactive') as UnitState['activeState'];
}

type Field = {
  [K in keyof UnitState]-?: [K, (v: unknown) => UnitState[K]];
}[keyof UnitState];

/**
 * D-Bus property name → UnitState field + converter. Unit-interface and type-specific (Service …)
 * properties share one table; `GetAll` on both interfaces and `PropertiesChanged` use it alike.
 */
export const PROPERTY_FIELDS: Readonly<Record<string, Field>> = {
  Id: ['name', (v) => str(v) ?? ''],
  Description: ['description', str],
  LoadState: ['loadState', (v) => str(v) ?? 'stub'],
  ActiveState: ['activeState', activeState],
  SubState: ['subState', (v) => str(v) ?? ''],
  FragmentPath: ['fragmentPath', (v) => str(v) || null],
  UnitFileState: ['unitFileState', (v) => str(v) || null],
  Transient: ['transient', (v) => bool(v) ?? false],
  InvocationID: ['invocationId', hex],
  StateChangeTimestamp: ['stateChangeTimestamp', usToMs],
  ActiveEnterTimestamp: ['activeEnterTimestamp', usToMs],
  ActiveExitTimestamp: ['activeExitTimestamp', usToMs],
  InactiveEnterTimestamp: ['inactiveEnterTimestamp', usToMs],
  InactiveExitTimestamp: ['inactiveExitTimestamp', usToMs],
  Result: ['result', str],
  MainPID: ['mainPID', int],
  ExecMainCode: ['execMainCode', int],
  ExecMainStatus: ['execMainStatus', int],
  ExecMainStartTimestamp: ['execMainStartTimestamp', usToMs],
  ExecMainExitTimestamp: ['execMainExitTimestamp', usToMs],
  NRestarts: ['nRestarts', int],
};

/** A UnitState with nothing known yet (a unit systemd never loaded looks like this). */
export function emptyState(name: string): UnitState {
  return {
    name,
    description: null,
    loadState: 'stub',
    activeState: 'inactive',
    subState: '',
    fragmentPath: null,
    unitFileState: null,
    transient: false,
    invocationId: null,
    stateChangeTimestamp: null,
    activeEnterTimestamp: null,
    activeExitTimestamp: null,
    inactiveEnterTimestamp: null,
    inactiveExitTimestamp: null,
    result: null,
    mainPID: null,
    execMainCode: null,
    execMainStatus: null,
    execMainStartTimestamp: null,
    execMainExitTimestamp: null,
    nRestarts: null,
  };
}

/**
 * Applies a property dictionary (`a{sv}` from GetAll or PropertiesChanged) to a state. Returns the new
 * state and the fields whose value actually changed. Unknown properties are ignored.
 */
export function applyProperties(
  base: UnitState,
  props: Readonly<Record<string, unknown>>,
): { state: UnitState; changed: (keyof UnitState)[] } {
  const state: Record<string, unknown> = { ...base };
  const changed: (keyof UnitState)[] = [];
  for (const [prop, raw] of Object.entries(props)) {
    const f = PROPERTY_FIELDS[prop];
    if (!f) continue;
    const [field, conv] = f;
    if (field === 'name' && base.name) continue; // the name we asked for wins (aliases)
    const value = conv(raw);
    if (state[field] !== value) {
      state[field] = value;
      changed.push(field);
    }
  }
  return { state: state as unknown as UnitState, changed };
}

/** A JSON-ready view: timestamps as ISO strings. `JSON.stringify` of a UnitState is already safe. */
export function stateToJSON(s: UnitState): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) out[k] = k.endsWith('Timestamp') ? msToIso(v as number | null) : v;
  return out;
}

/**
 * Decodes a unit object path systemd gave us (`/org/freedesktop/systemd1/unit/ssh_2eservice`) back to
 * the unit name. Only used to route signals; never build paths this way (use GetUnit/LoadUnit).
 * Returns undefined for paths that are not unit objects.
 */
export function unitNameFromPath(path: string): string | undefined {
  const prefix = '/org/freedesktop/systemd1/unit/';
  if (!path.startsWith(prefix)) return undefined;
  const label = path.slice(prefix.length);
  if (label === '' || label.includes('/')) return undefined;
  if (label === '_') return '';
  const bytes: number[] = [];
  for (let i = 0; i < label.length; i++) {
    const c = label[i]!;
    if (c === '_') {
      const h = label.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(h)) return undefined;
      bytes.push(parseInt(h, 16));
      i += 2;
    } else {
      bytes.push(c.charCodeAt(0));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
