/**
 * Logging through pino. Under journald (JOURNAL_STREAM names our stderr) lines are plain text with an
 * sd-daemon priority prefix and no timestamp (journald adds one): `<6>message key=value`, so
 * `journalctl -p warning -u flotilla` works. Elsewhere: one JSON object per line on stderr.
 * Secrets never reach here: callers log names and paths, not file contents or keys. As a second
 * fence, every line is scrubbed of URL credentials (`scheme://user:PASSWORD@` → `user:***@`) before
 * it is written, so an `etcd_servers=http://user:pass@…` logged anywhere shows no password.
 */
import { fstatSync } from 'node:fs';
import { pino, type Logger as PinoLogger } from 'pino';

/**
 * The logger seam every part takes (pino-compatible shape): a pino logger satisfies it, tests pass
 * `nullLogger` or a recorder.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export const nullLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

const PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/** True when stderr is connected to the journal (sd_journal_stream_fd semantics). */
export function underJournald(env = process.env): boolean {
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  const [dev, ino] = js.split(':');
  try {
    const st = fstatSync(2);
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

function fmtValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/** Render one pino JSON line as a journald line. */
export function journalLine(json: string): string {
  const o = JSON.parse(json) as Record<string, unknown>;
  const { level, msg, ...rest } = o;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${fmtValue(v)}`)
    .join(' ');
  return `<${PRIORITY[level as number] ?? 6}>${typeof msg === 'string' ? msg : JSON.stringify(msg ?? '')}${fields ? ` ${fields}` : ''}\n`;
}

/** `scheme://user:secret@` → `scheme://user:***@`, anywhere in a line (JSON-escaped or not). */
export function scrubCredentials(line: string): string {
  return line.replace(/(\b[A-Za-z][A-Za-z0-9+.-]*:(?:\\?\/){2}[^\s/@:"\\]*):[^\s/@"]*@/g, '$1:***@');
}

export function createLogger(opts: { verbosity?: number; journald?: boolean } = {}): PinoLogger {
  const level = (opts.verbosity ?? 0) > 0 ? 'debug' : 'info';
  if (opts.journald ?? underJournald()) {
    return pino(
      { level, base: null, timestamp: false },
      { write: (line: string) => void process.stderr.write(scrubCredentials(journalLine(line))) },
    );
  }
  const out = pino.destination({ fd: 2, sync: true });
  return pino({ level, base: null }, { write: (line: string) => void out.write(scrubCredentials(line)) });
}
