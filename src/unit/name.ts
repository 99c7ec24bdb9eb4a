/**
 * Unit names: fleet's validation rules and exact error strings (`api.ValidateName`), name parsing
 * (`unit.NewUnitNameInfo`), templates/instances, and fleetctl's argument mangling.
 *
 * Contract: every function is pure. `validateUnitName`, `parseUnitName`, `templateName` and
 * `mangleUnitName` throw `FlotillaError('E_UNIT_NAME', …)` with `details.name`; the predicates
 * (`isTemplateName`, `isInstanceName`) never throw.
 */
import { FlotillaError } from '../lib/errors.js';
import { goQuote, goQuoteRune, utf8Length } from './text.js';

/** Every unit type fleet's API accepts (`validUnitTypes`), sorted. */
export const UNIT_SUFFIXES = [
  'automount',
  'busname',
  'device',
  'mount',
  'path',
  'scope',
  'service',
  'slice',
  'snapshot',
  'socket',
  'swap',
  'target',
  'timer',
] as const;
export type UnitSuffix = (typeof UNIT_SUFFIXES)[number];

/** Unit types that may be templates (`foo@.service`) or instances (`foo@1.service`). */
export const TEMPLATE_SUFFIXES = ['path', 'service', 'socket', 'target', 'timer'] as const;

/** Maximum unit name length in bytes (systemd's UNIT_NAME_MAX). */
export const UNIT_NAME_MAX = 256;

/** Characters allowed before the last dot (fleet: `[A-Za-z0-9:_.\-@\\]`). */
const VALID_CHAR = /^[A-Za-z0-9:_.\-@\\]$/;

/** First C0/C1 control character (NUL, DEL included) in `s`, with its index. */
function findControl(s: string): { ch: string; index: number } | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return { ch: s.charAt(i), index: i };
  }
  return undefined;
}

function nameError(name: string, message: string, extra: Record<string, unknown> = {}): FlotillaError {
  return new FlotillaError('E_UNIT_NAME', message, { name, ...extra });
}

function isSuffix(s: string, list: readonly string[]): boolean {
  return list.includes(s);
}

/**
 * Throws E_UNIT_NAME unless `name` is a valid unit name. Checks, in fleet's order and with fleet's
 * messages: empty, longer than 256 bytes, no ".", ends in ".", unknown type, template-only types,
 * characters, leading "@". Our hardening runs right after the length check and refuses control
 * characters (NUL included) and any "/" (path-like names such as `../x.service`) with messages of
 * its own, so such names are never turned into file paths.
 */
export function validateUnitName(name: string): void {
  if (typeof name !== 'string') throw nameError(String(name), 'unit name must be a string');
  if (name.length === 0) throw nameError(name, 'unit name cannot be empty');
  if (utf8Length(name) > UNIT_NAME_MAX) {
    throw nameError(name, `unit name exceeds maximum length (${UNIT_NAME_MAX})`);
  }
  const ctl = findControl(name);
  if (ctl) {
    throw nameError(
      name,
      `unit name must not contain control characters: found ${goQuoteRune(ctl.ch)} at index ${ctl.index}`,
      { index: ctl.index },
    );
  }
  if (name.includes('/')) {
    throw nameError(name, `unit name must not contain "/" (path-like names are refused): ${goQuote(name)}`);
  }
  const dot = name.lastIndexOf('.');
  if (dot === -1) throw nameError(name, 'unit name must contain "."');
  if (dot === name.length - 1) throw nameError(name, 'unit name cannot end in "."');
  const suffix = name.slice(dot + 1);
  if (!isSuffix(suffix, UNIT_SUFFIXES)) throw nameError(name, `invalid unit type: ${goQuote(suffix)}`);
  if (name.includes('@') && !isSuffix(suffix, TEMPLATE_SUFFIXES)) {
    throw nameError(name, `invalid unit type for template: ${goQuote(suffix)}`);
  }
  for (const ch of name.slice(0, dot)) {
    if (!VALID_CHAR.test(ch)) throw nameError(name, `invalid character ${goQuoteRune(ch)} in unit name`);
  }
  if (name.startsWith('@')) throw nameError(name, 'unit name cannot start in "@"');
}

/** The parts of a valid unit name (fleet `UnitNameInfo`), also the values of `%n %N %p %i`. */
export interface UnitNameInfo {
  /** The full name, e.g. `foo@bar.service` (`%n`). */
  readonly fullName: string;
  /** The name without the type suffix, e.g. `foo@bar` (`%N`). */
  readonly name: string;
  /** The part before the first "@", or the whole `name` if there is none, e.g. `foo` (`%p`). */
  readonly prefix: string;
  /** Text between the first "@" and the last ".", e.g. `bar` (`%i`); "" for templates and plain units. */
  readonly instance: string;
  /** The unit type without the dot, e.g. `service`. */
  readonly suffix: UnitSuffix;
  /** `foo@.service` for templates and instances; undefined for plain units. */
  readonly template: string | undefined;
  readonly isTemplate: boolean;
  readonly isInstance: boolean;
}

/** Validates `name` (throws E_UNIT_NAME) and splits it into its parts. */
export function parseUnitName(name: string): UnitNameInfo {
  validateUnitName(name);
  const dot = name.lastIndexOf('.');
  const base = name.slice(0, dot);
  const suffix = name.slice(dot + 1) as UnitSuffix;
  const at = base.indexOf('@');
  if (at === -1) {
    return {
      fullName: name,
      name: base,
      prefix: base,
      instance: '',
      suffix,
      template: undefined,
      isTemplate: false,
      isInstance: false,
    };
  }
  const prefix = base.slice(0, at);
  const instance = base.slice(at + 1);
  return {
    fullName: name,
    name: base,
    prefix,
    instance,
    suffix,
    template: `${prefix}@.${suffix}`,
    isTemplate: instance === '',
    isInstance: instance !== '',
  };
}

/** True for a valid template name such as `foo@.service`; false otherwise (never throws). */
export function isTemplateName(name: string): boolean {
  try {
    return parseUnitName(name).isTemplate;
  } catch {
    return false;
  }
}

/** True for a valid instance name such as `foo@1.service`; false otherwise (never throws). */
export function isInstanceName(name: string): boolean {
  try {
    return parseUnitName(name).isInstance;
  } catch {
    return false;
  }
}

/** The template of an instance: `foo@1.service` → `foo@.service`. Throws E_UNIT_NAME for non-instances. */
export function templateName(instance: string): string {
  const info = parseUnitName(instance);
  if (!info.isInstance || info.template === undefined) {
    throw nameError(
      instance,
      `unit name ${goQuote(instance)} is not a template instance (expected name@instance.type)`,
    );
  }
  return info.template;
}

/** Go `path.Base`. */
function goPathBase(p: string): string {
  if (p === '') return '.';
  let s = p;
  while (s.length > 0 && s.endsWith('/')) s = s.slice(0, -1);
  const i = s.lastIndexOf('/');
  if (i >= 0) s = s.slice(i + 1);
  return s === '' ? '/' : s;
}

/**
 * fleetctl's `unitNameMangle`: take `path.Base(arg)` and append `.service` unless the name already
 * ends in a known unit type. The result is not validated; pass it to `validateUnitName`.
 *
 * Deliberate differences from fleetctl v1.0:
 * - fleetctl only recognises service/socket/timer/path/device/mount/automount, so it turned
 *   `foo.target` into `foo.target.service` (and likewise .slice, .scope, .swap, .snapshot,
 *   .busname) and could not submit those types at all. We keep every type in UNIT_SUFFIXES.
 * - An argument whose base is empty, ".", ".." or "/" is refused (E_UNIT_NAME) instead of becoming
 *   `..service`, `...service` or `/.service`.
 */
export function mangleUnitName(arg: string): string {
  const base = goPathBase(arg);
  if (base === '.' || base === '..' || base === '/') {
    throw nameError(arg, arg === '' ? 'unit name cannot be empty' : `not a unit name: ${goQuote(arg)}`);
  }
  const dot = base.lastIndexOf('.');
  if (dot !== -1 && isSuffix(base.slice(dot + 1), UNIT_SUFFIXES)) return base;
  return `${base}.service`;
}
