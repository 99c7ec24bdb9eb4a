/**
 * The journal, read by spawning `journalctl --output=json` (argv array, never a shell).
 *
 * CONTRACT
 * - `readJournal(query)` returns an async iterator of typed entries. Without `follow` it ends when
 *   journalctl exits 0; a non-zero exit ends it with `E_JOURNAL` (stderr tail in details). With
 *   `follow`, journalctl exiting for any reason ends it with `E_JOURNAL`.
 * - Breaking out of `for await`, `return()` or `close()` kills journalctl (SIGTERM, then SIGKILL after
 *   2 s); `close()` resolves once the child is gone. Nothing is left running.
 * - NDJSON is parsed robustly: lines may be split across chunks (also inside a UTF-8 sequence), a
 *   field may be a string, an array of bytes (binary or invalid UTF-8; decoded with U+FFFD), `null`
 *   (too large without --all; we pass --all), or an array of those for repeated fields. A line that is
 *   not JSON is skipped and counted (`reader.skipped`), never fatal.
 * - Backpressure: journalctl's stdout is paused while more than `highWater` entries wait unread.
 * - `follow` without `lines`, `since` or a cursor starts at the end (`--lines=0`): only entries written
 *   after journalctl opened the journal, which is some time after `readJournal` returns. To not miss
 *   entries around the start, pass `since` (or resume with `afterCursor`).
 * - Every unit name is validated first; option values travel as single `--opt=value` argv elements.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { FlotillaError } from '../lib/errors.js';
import { validateUnitName } from './unit-deps.js';

export type JournalField = string | string[];

export interface JournalEntry {
  cursor: string;
  /** `__REALTIME_TIMESTAMP` in ms since the epoch (µs as a fraction). */
  realtime: number;
  message: string;
  /** syslog priority 0 (emerg) … 7 (debug), when present. */
  priority: number | undefined;
  /** `_SYSTEMD_UNIT`, or `UNIT` for systemd's own messages about a unit. */
  unit: string | undefined;
  pid: number | undefined;
  identifier: string | undefined;
  /** Every field, decoded to strings (repeated fields as arrays). */
  fields: Readonly<Record<string, JournalField>>;
}

export interface JournalQuery {
  unit?: string | readonly string[];
  /** Show at most the last N entries (`--lines=N`). */
  lines?: number;
  /** A Date, or a journalctl time spec ("2024-01-01 10:00:00", "-5min", "@1700000000"). */
  since?: Date | string;
  /** Start after this cursor (`--after-cursor`). */
  afterCursor?: string;
  follow?: boolean;
  /** Only the current boot (`-b`). */
  boot?: boolean;
  /** Highest priority shown (`-p`), 0–7. */
  priority?: number;
}

export interface JournalOptions {
  /** The command and leading args; default `['journalctl']`. Tests run it inside a machine. */
  command?: readonly string[];
  highWater?: number;
}

const TIME_SPEC = /^[0-9A-Za-z@:+\-. ]{1,64}$/;
const CURSOR = /^[0-9A-Za-z=;_.:-]{1,512}$/;

/** The journalctl argv (after the command) for a query. Pure; validates every value. */
export function journalArgs(q: JournalQuery): string[] {
  const args = ['--output=json', '--all', '--no-pager', '--quiet'];
  const units = q.unit === undefined ? [] : typeof q.unit === 'string' ? [q.unit] : [...q.unit];
  for (const u of units) {
    validateUnitName(u);
    args.push(`--unit=${u}`);
  }
  if (q.lines !== undefined) {
    if (!Number.isSafeInteger(q.lines) || q.lines < 0) throw badQuery('lines must be a non-negative integer');
    args.push(`--lines=${q.lines}`);
  }
  if (q.since !== undefined) {
    if (q.since instanceof Date) {
      const t = q.since.getTime();
      if (!Number.isFinite(t)) throw badQuery('since is an invalid Date');
      args.push(`--since=@${Math.floor(t / 1000)}`);
    } else {
      if (!TIME_SPEC.test(q.since)) throw badQuery(`since "${q.since}" is not a time spec`);
      args.push(`--since=${q.since}`);
    }
  }
  if (q.afterCursor !== undefined) {
    if (!CURSOR.test(q.afterCursor)) throw badQuery('afterCursor is not a journal cursor');
    args.push(`--after-cursor=${q.afterCursor}`);
  }
  if (q.priority !== undefined) {
    if (!Number.isInteger(q.priority) || q.priority < 0 || q.priority > 7)
      throw badQuery('priority must be 0..7');
    args.push(`--priority=${q.priority}`);
  }
  if (q.boot) args.push('--boot');
  if (q.follow) {
    args.push('--follow');
    if (q.lines === undefined && q.since === undefined && q.afterCursor === undefined) args.push('--lines=0');
  }
  return args;
}

function badQuery(msg: string): FlotillaError {
  return new FlotillaError('E_JOURNAL', `bad journal query: ${msg}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

function decodeValue(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v) && v.every((b) => typeof b === 'number')) return utf8.decode(Uint8Array.from(v));
  return undefined; // null (truncated) or something unexpected
}

/** Decodes one parsed journalctl JSON object. Returns undefined when it has no cursor. */
export function toEntry(obj: unknown): JournalEntry | undefined {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return undefined;
  const fields: Record<string, JournalField> = {};
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    // A repeated field is an array whose items are strings or byte arrays; a byte array alone is one value.
    if (Array.isArray(v) && v.some((x) => typeof x !== 'number')) {
      const items = v.map(decodeValue).filter((x): x is string => x !== undefined);
      fields[k] = items;
    } else {
      const s = decodeValue(v);
      if (s !== undefined) fields[k] = s;
    }
  }
  const one = (k: string): string | undefined => {
    const f = fields[k];
    return Array.isArray(f) ? f[f.length - 1] : f;
  };
  const cursor = one('__CURSOR');
  if (cursor === undefined) return undefined;
  const num = (k: string): number | undefined => {
    const s = one(k);
    if (s === undefined || !/^-?\d+$/.test(s)) return undefined;
    return Number(s);
  };
  const rt = one('__REALTIME_TIMESTAMP');
  let realtime = NaN;
  if (rt !== undefined && /^\d+$/.test(rt)) {
    const us = BigInt(rt);
    realtime = Number(us / 1000n) + Number(us % 1000n) / 1000;
  }
  const msg = fields.MESSAGE;
  return {
    cursor,
    realtime,
    message: Array.isArray(msg) ? msg.join('\n') : (msg ?? ''),
    priority: num('PRIORITY'),
    unit: one('_SYSTEMD_UNIT') ?? one('UNIT'),
    pid: num('_PID'),
    identifier: one('SYSLOG_IDENTIFIER'),
    fields,
  };
}

/**
 * Splits a byte stream into NDJSON lines and decodes them. Bytes are buffered until a newline, so a
 * chunk boundary inside a line or inside a multi-byte character is harmless.
 */
export class NdjsonJournalParser {
  skipped = 0;
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer | string): JournalEntry[] {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
    const out: JournalEntry[] = [];
    let start = 0;
    for (;;) {
      const nl = this.buf.indexOf(0x0a, start);
      if (nl < 0) break;
      this.line(this.buf.subarray(start, nl), out);
      start = nl + 1;
    }
    this.buf = start === 0 ? this.buf : Buffer.from(this.buf.subarray(start));
    return out;
  }

  /** Flushes a final line without a newline (journalctl always ends lines, but be lenient). */
  end(): JournalEntry[] {
    const out: JournalEntry[] = [];
    if (this.buf.length > 0) this.line(this.buf, out);
    this.buf = Buffer.alloc(0);
    return out;
  }

  private line(bytes: Buffer, out: JournalEntry[]): void {
    const text = bytes.toString('utf8').trim();
    if (text === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      this.skipped++;
      return;
    }
    const e = toEntry(obj);
    if (e) out.push(e);
    else this.skipped++;
  }
}

export interface JournalReader extends AsyncIterableIterator<JournalEntry> {
  /** Lines that could not be parsed. */
  readonly skipped: number;
  /** Kills journalctl and resolves when it has exited. */
  close(): Promise<void>;
}

/** Spawns journalctl for `query` and returns the entries as an async iterator. */
export function readJournal(query: JournalQuery, opts: JournalOptions = {}): JournalReader {
  const args = journalArgs(query);
  const [cmd, ...lead] = opts.command ?? ['journalctl'];
  if (!cmd) throw badQuery('empty command');
  return new Reader(cmd, [...lead, ...args], query.follow === true, opts.highWater ?? 512);
}

/** The last `lines` messages of a unit (oldest first), formatted like `journalctl -o short`. */
export async function tailUnit(
  unit: string,
  lines: number,
  opts: JournalOptions & { since?: Date } = {},
): Promise<string[]> {
  const r = readJournal({ unit, lines, ...(opts.since ? { since: opts.since } : {}) }, opts);
  const out: string[] = [];
  try {
    for await (const e of r) out.push(formatEntry(e));
  } finally {
    await r.close();
  }
  return out;
}

export function formatEntry(e: JournalEntry): string {
  const who = e.identifier ?? e.unit ?? '?';
  const when = Number.isFinite(e.realtime) ? new Date(e.realtime).toISOString() : '-';
  return `${when} ${who}${e.pid !== undefined ? `[${e.pid}]` : ''}: ${e.message}`;
}

class Reader implements JournalReader {
  private readonly child: ChildProcess;
  private readonly parser = new NdjsonJournalParser();
  private readonly items: JournalEntry[] = [];
  private waiter:
    { resolve: (r: IteratorResult<JournalEntry>) => void; reject: (e: unknown) => void } | undefined;
  private ended = false;
  private error: unknown;
  private cancelled = false;
  private paused = false;
  private stderr = '';
  private readonly exited: Promise<void>;

  constructor(
    cmd: string,
    args: string[],
    private readonly follow: boolean,
    private readonly highWater: number,
  ) {
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    this.exited = new Promise<void>((resolve) => {
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.onClose(code, signal);
        resolve();
      });
    });
    this.child.once('error', (err: Error) => {
      // spawn failure (ENOENT): 'close' still follows
      this.error ??= new FlotillaError(
        'E_JOURNAL',
        `cannot run ${cmd}: ${err.message}`,
        { command: cmd },
        { cause: err },
      );
    });
    this.child.stdout?.on('data', (chunk: Buffer) => this.deliver(this.parser.push(chunk)));
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-4096);
    });
  }

  get skipped(): number {
    return this.parser.skipped;
  }

  private deliver(entries: JournalEntry[]): void {
    if (this.cancelled) return;
    for (const e of entries) {
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w.resolve({ value: e, done: false });
      } else {
        this.items.push(e);
      }
    }
    if (!this.paused && this.items.length > this.highWater) {
      this.paused = true;
      this.child.stdout?.pause();
    }
  }

  private onClose(code: number | null, signal: NodeJS.Signals | null): void {
    this.deliver(this.parser.end());
    if (!this.cancelled && this.error === undefined) {
      if (code !== 0 || this.follow) {
        this.error = new FlotillaError(
          'E_JOURNAL',
          `journalctl exited ${signal ? `on ${signal}` : `with code ${code}`}${this.stderr ? `: ${this.stderr.trim().split('\n').pop()}` : ''}`,
          { code, signal, stderr: this.stderr.trim() },
        );
      }
    }
    this.ended = true;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      if (this.error !== undefined && !this.cancelled) {
        const e = this.error;
        this.error = undefined;
        w.reject(e);
      } else {
        w.resolve({ value: undefined, done: true });
      }
    }
  }

  next(): Promise<IteratorResult<JournalEntry>> {
    const item = this.items.shift();
    if (this.paused && this.items.length <= this.highWater / 4) {
      this.paused = false;
      this.child.stdout?.resume();
    }
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.ended || this.cancelled) {
      if (this.error !== undefined && !this.cancelled) {
        const e = this.error;
        this.error = undefined;
        return Promise.reject(e instanceof Error ? e : new Error('journal reader failed'));
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async return(): Promise<IteratorResult<JournalEntry>> {
    await this.close();
    return { value: undefined, done: true };
  }

  async close(): Promise<void> {
    if (!this.cancelled) {
      this.cancelled = true;
      this.items.length = 0;
      const w = this.waiter;
      this.waiter = undefined;
      w?.resolve({ value: undefined, done: true });
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill('SIGTERM');
        const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
        await this.exited;
        clearTimeout(t);
      }
    }
    await this.exited;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<JournalEntry> {
    return this;
  }
}

/** journalctl's --output modes (`journalctl --output=help`, systemd 252); the API and the CLI accept these. */
export const JOURNAL_OUTPUTS = [
  'short',
  'short-precise',
  'short-iso',
  'short-iso-precise',
  'short-full',
  'short-monotonic',
  'short-unix',
  'short-delta',
  'verbose',
  'export',
  'json',
  'json-pretty',
  'json-sse',
  'json-seq',
  'cat',
  'with-unit',
] as const;
