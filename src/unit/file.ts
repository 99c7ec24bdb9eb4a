/**
 * systemd unit files: a hand-written parser and the go-systemd `unit.Serialize` normal form that
 * fleet stores, hashes and prints (`fleetctl cat`).
 *
 * Syntax accepted by `UnitFile.parse` (systemd.syntax(7), go-systemd `unit/deserialize.go`):
 * - `[Section]` headers (any name, unknown sections kept); `Name=Value` options; repeated names
 *   kept in order; `Name=` (empty, a list reset in systemd) kept as an option with value "".
 * - Lines whose first non-blank character is `#` or `;` are comments; nothing else is (so
 *   `Description=Hello; world` keeps its `;`). Blank lines are ignored.
 * - A line ending in an odd number of backslashes (trailing blanks ignored) continues on the next
 *   line: the backslash becomes one space, the next line is appended as is. Comment lines inside a
 *   continuation are skipped (as systemd does); a blank line ends it. A comment line never continues.
 * - Whitespace (Go `unicode.IsSpace`) around names and values is trimmed; values are otherwise
 *   kept byte for byte, quotes and backslashes included. "\r\n" line ends are accepted.
 *
 * Rejected with E_UNIT_PARSE (message names the line, `details.line` is 1-based): a body over
 * 1 MiB, invalid UTF-8 (byte offset and line), NUL bytes, a carriage return not followed by "\n",
 * a line over 2048 bytes, an option once joined over 2048 bytes or ending in a backslash (which
 * the normal form could not hold), an option before the first section, a malformed or empty
 * section header, a line without "=", an empty option name.
 *
 * Normal form (`serialize`): per section in first-seen order, `[Section]\n` then `Name=Value\n`
 * for each of its options in order, and one blank line between sections; "" for no options.
 * Invariant: for every UnitFile `u`, `UnitFile.parse(u.serialize())` has the options of `u` regrouped
 * by section (so the same normal form and hash); `fromOptions` refuses what could not round-trip.
 */
import { createHash } from 'node:crypto';
import { FlotillaError } from '../lib/errors.js';
import {
  excerpt,
  goQuote,
  invalidUtf8Offset,
  isGoSpace,
  loneSurrogateIndex,
  trimGoSpace,
  trimLeftGoSpace,
  trimRightGoSpace,
  utf8Length,
} from './text.js';

export interface UnitOption {
  section: string;
  name: string;
  value: string;
}

/** Longest accepted line in bytes (go-systemd SYSTEMD_LINE_MAX). */
export const UNIT_LINE_MAX = 2048;
/** Largest accepted unit body in bytes, raw or normalised. */
export const UNIT_BODY_MAX = 1024 * 1024;

function parseError(message: string, details: Record<string, unknown> = {}): FlotillaError {
  return new FlotillaError('E_UNIT_PARSE', message, details);
}

function lineError(line: number, message: string): FlotillaError {
  return parseError(`line ${line}: ${message}`, { line });
}

/** Decodes and checks the encoding-level rules (size, UTF-8, surrogates). Strips a leading BOM. */
function decode(input: string | Uint8Array): string {
  if (typeof input === 'string') {
    if (input.length > UNIT_BODY_MAX || utf8Length(input) > UNIT_BODY_MAX) {
      throw parseError(`unit file too large (max ${UNIT_BODY_MAX} bytes)`, { max: UNIT_BODY_MAX });
    }
    const bad = loneSurrogateIndex(input);
    if (bad !== -1) {
      const line = input.slice(0, bad).split('\n').length;
      throw parseError(`line ${line}: invalid text: unpaired UTF-16 surrogate at index ${bad}`, {
        line,
        index: bad,
      });
    }
    return input.startsWith('\ufeff') ? input.slice(1) : input;
  }
  if (!(input instanceof Uint8Array)) throw parseError('unit file body must be a string or bytes');
  if (input.length > UNIT_BODY_MAX) {
    throw parseError(`unit file too large (max ${UNIT_BODY_MAX} bytes)`, { max: UNIT_BODY_MAX });
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    const offset = Math.max(0, invalidUtf8Offset(input));
    let line = 1;
    for (let i = 0; i < offset; i++) if (input[i] === 0x0a) line++;
    throw parseError(`line ${line}: invalid UTF-8 at byte offset ${offset}`, { line, offset });
  }
}

/** Index of the continuation backslash in `s` (odd trailing run, blanks after it ignored), or -1. */
function continuationIndex(s: string): number {
  const end = trimRightGoSpace(s).length;
  let k = 0;
  while (k < end && s.charAt(end - 1 - k) === '\\') k++;
  return k % 2 === 1 ? end - 1 : -1;
}

/** Parses the decoded text into options (see the module comment for the rules). */
function parseText(text: string): UnitOption[] {
  const lines = text.split('\n');
  const options: UnitOption[] = [];
  let section: string | undefined;
  let pending: { line: number; text: string } | undefined;

  const logical = (s: string, line: number): void => {
    const t = trimGoSpace(s);
    if (t.startsWith('[')) {
      if (t.length < 2 || !t.endsWith(']')) throw lineError(line, `malformed section header ${excerpt(t)}`);
      const name = t.slice(1, -1);
      if (trimGoSpace(name) === '') throw lineError(line, `empty section name ${excerpt(t)}`);
      if (name.includes('[') || name.includes(']'))
        throw lineError(line, `malformed section header ${excerpt(t)}`);
      section = name;
      return;
    }
    const eq = t.indexOf('=');
    if (section === undefined) {
      if (eq > 0)
        throw lineError(
          line,
          `option ${goQuote(trimGoSpace(t.slice(0, eq)))} appears before any [Section] header`,
        );
      throw lineError(line, `expected a [Section] header, found ${excerpt(t)}`);
    }
    if (eq === -1) throw lineError(line, `missing "=" in ${excerpt(t)}`);
    const name = trimGoSpace(t.slice(0, eq));
    const value = trimGoSpace(t.slice(eq + 1));
    if (name === '') throw lineError(line, `missing option name before "=" in ${excerpt(t)}`);
    if (continuationIndex(value) !== -1) {
      // `A=x \ \` + blank line: systemd reads "x \", which no single unit-file line can hold.
      throw lineError(line, `option ${goQuote(name)} ends in a backslash once continuation lines are joined`);
    }
    if (utf8Length(name) + 1 + utf8Length(value) > UNIT_LINE_MAX) {
      throw lineError(
        line,
        `option ${goQuote(name)} too long once continuation lines are joined (max ${UNIT_LINE_MAX} bytes)`,
      );
    }
    options.push({ section, name, value });
  };

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let raw = lines[i] ?? '';
    if (raw.endsWith('\r')) raw = raw.slice(0, -1);
    if (raw.includes('\0')) throw lineError(lineNo, 'NUL byte not allowed');
    if (raw.includes('\r')) throw lineError(lineNo, 'carriage return not followed by a newline');
    if (utf8Length(raw) > UNIT_LINE_MAX)
      throw lineError(lineNo, `line too long (max ${UNIT_LINE_MAX} bytes)`);
    const lead = trimLeftGoSpace(raw);
    if (lead.startsWith('#') || lead.startsWith(';')) continue;
    if (pending === undefined && lead === '') continue;
    const start = pending?.line ?? lineNo;
    const before = pending?.text ?? '';
    // Only this physical line decides: what came before always ends in the replacing space.
    const cut = continuationIndex(raw);
    if (cut !== -1) {
      pending = { line: start, text: before + raw.slice(0, cut) + ' ' };
      continue;
    }
    pending = undefined;
    logical(before + raw, start);
  }
  if (pending !== undefined) logical(pending.text, pending.line);
  return options;
}

/** go-systemd `unit.Serialize` layout. */
function serializeOptions(options: readonly UnitOption[]): string {
  const bySection = new Map<string, string[]>();
  for (const o of options) {
    let lines = bySection.get(o.section);
    if (!lines) bySection.set(o.section, (lines = []));
    lines.push(`${o.name}=${o.value}\n`);
  }
  return [...bySection].map(([section, lines]) => `[${section}]\n${lines.join('')}`).join('\n');
}

function startsOrEndsWithSpace(s: string): boolean {
  return s !== '' && (isGoSpace(s.charAt(0)) || isGoSpace(s.charAt(s.length - 1)));
}

/** Why `o` cannot be written as a unit-file line that parses back to itself, or undefined. */
function optionProblem(o: UnitOption): string | undefined {
  if (typeof o.section !== 'string' || typeof o.name !== 'string' || typeof o.value !== 'string') {
    return 'section, name and value must be strings';
  }
  for (const [field, s] of [
    ['section', o.section],
    ['name', o.name],
    ['value', o.value],
  ] as const) {
    if (/[\n\r\0]/.test(s)) return `${field} contains a newline, carriage return or NUL`;
    const bad = loneSurrogateIndex(s);
    if (bad !== -1) return `${field} contains an unpaired UTF-16 surrogate at index ${bad}`;
  }
  if (o.section === '') return 'section is empty';
  if (/[[\]]/.test(o.section)) return 'section contains "[" or "]"';
  if (trimGoSpace(o.section) === '') return 'section is blank';
  if (o.name === '') return 'name is empty';
  if (o.name.includes('=')) return 'name contains "="';
  if (startsOrEndsWithSpace(o.name)) return 'name has leading or trailing whitespace';
  if (/^[#;[]/.test(o.name)) return 'name starts with "#", ";" or "["';
  if (startsOrEndsWithSpace(o.value)) return 'value has leading or trailing whitespace';
  if (continuationIndex(o.value) !== -1)
    return 'value ends with a backslash (it would continue onto the next line)';
  if (utf8Length(o.name) + 1 + utf8Length(o.value) > UNIT_LINE_MAX)
    return `line too long (max ${UNIT_LINE_MAX} bytes)`;
  return undefined;
}

/** An immutable, parsed unit file. Construct with `UnitFile.parse` or `UnitFile.fromOptions`. */
export class UnitFile {
  /** All options in file order (frozen). */
  readonly options: readonly UnitOption[];
  readonly #text: string;
  #hash: string | undefined;

  private constructor(options: UnitOption[]) {
    this.options = Object.freeze(
      options.map((o) => Object.freeze({ section: o.section, name: o.name, value: o.value })),
    );
    this.#text = serializeOptions(this.options);
    if (utf8Length(this.#text) > UNIT_BODY_MAX) {
      throw parseError(`unit file too large once normalised (max ${UNIT_BODY_MAX} bytes)`, {
        max: UNIT_BODY_MAX,
      });
    }
  }

  /** Parses a unit file body. Pure; throws E_UNIT_PARSE naming the line (see module comment). */
  static parse(input: string | Uint8Array): UnitFile {
    return new UnitFile(parseText(decode(input)));
  }

  /**
   * Builds a unit from options (e.g. the API's `options` array). Throws E_UNIT_PARSE (with
   * `details.index`, `section`, `name`) for an option that could not be written as a unit-file line
   * reading back the same: empty or bracketed section, empty name or one with "=", newline/NUL
   * anywhere, blanks around name or value, a value ending in a continuation backslash, a line
   * over 2048 bytes.
   */
  static fromOptions(opts: readonly UnitOption[]): UnitFile {
    const raw: unknown = opts;
    if (!Array.isArray(raw)) throw parseError('unit options must be an array');
    opts.forEach((o: UnitOption | null | undefined, index) => {
      if (typeof o !== 'object' || o === null) throw parseError(`option ${index}: not an object`, { index });
      const problem = optionProblem(o);
      if (problem !== undefined) {
        const where =
          typeof o.name === 'string' && typeof o.section === 'string' ? ` (${o.name} in [${o.section}])` : '';
        throw parseError(`option ${index}${where}: ${problem}`, { index, section: o.section, name: o.name });
      }
    });
    return new UnitFile([...opts]);
  }

  /** The go-systemd normal form: what fleet stores, hashes and `fleetctl cat` prints. */
  serialize(): string {
    return this.#text;
  }

  toString(): string {
    return this.#text;
  }

  /** SHA-1 of the UTF-8 normal form, 40 lowercase hex digits (fleet's unit hash). */
  hash(): string {
    this.#hash ??= createHash('sha1').update(this.#text, 'utf8').digest('hex');
    return this.#hash;
  }

  /** The first 7 hex digits of `hash()`, as `fleetctl list-unit-files` shows them. */
  shortHash(): string {
    return this.hash().slice(0, 7);
  }

  /** The last value of `name` in `section` (systemd's "last assignment wins"), or undefined. */
  get(section: string, name: string): string | undefined {
    for (let i = this.options.length - 1; i >= 0; i--) {
      const o = this.options[i];
      if (o && o.section === section && o.name === name) return o.value;
    }
    return undefined;
  }

  /** Every value of `name` in `section`, in order, empty (reset) values included. */
  getAll(section: string, name: string): string[] {
    return this.options.filter((o) => o.section === section && o.name === name).map((o) => o.value);
  }

  /** Names of the sections that hold options, in first-seen order. */
  sections(): string[] {
    return [...new Set(this.options.map((o) => o.section))];
  }

  /**
   * `[Unit] Description`, taking the first value as fleet's `UnitFile.Description()` does (this is
   * what `list-unit-files --fields=desc` shows); undefined when absent.
   */
  description(): string | undefined {
    return this.options.find((o) => o.section === 'Unit' && o.name === 'Description')?.value;
  }
}
