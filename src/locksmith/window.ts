/**
 * Reboot windows as locksmith had them (LS:pkg/timeutil): a start `[Day ]HH:MM` (day `sun`..`sat`,
 * any case; without a day the window is daily) and a length as a Go duration (`1h30m`), which must
 * not be negative and must be shorter than the period (24h daily, 7d weekly).
 *
 * Times are wall-clock times in the machine's local zone, as locksmith computed them (Go's
 * time.Local), or in UTC; the zone is a parameter, so tests fix it. Days are added on the wall
 * clock, so a window keeps its local start time across a DST change (the day is then 23 or 25 h).
 */
import { FlotillaError } from '../lib/errors.js';

export type Zone = 'local' | 'utc';

export interface RebootWindow {
  /** 0..6 (Sunday = 0), or undefined for a daily window. */
  day?: number;
  hour: number;
  minute: number;
  lengthMs: number;
  /** The text it was parsed from, for logs: `Thu 04:00 1h30m0s`. */
  text: string;
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1e3,
  m: 6e4,
  h: 3.6e6,
};

function configError(key: string, msg: string): FlotillaError {
  return new FlotillaError('E_CONFIG', `${key}: ${msg}`, { field: key });
}

/** Go's time.ParseDuration, in ms: `1h30m`, `90m`, `1.5h`, `-5s`, `0`. Throws naming `key`. */
export function parseGoDuration(key: string, text: string): number {
  const s = text.trim();
  if (s === '0' || s === '+0' || s === '-0') return 0;
  const m = /^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/.exec(s);
  if (!m) throw configError(key, `${JSON.stringify(text)} is not a duration (e.g. 1h30m, 90m, 45s)`);
  let total = 0;
  for (const part of m[2]!.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * UNITS[part[2]!]!;
  }
  return m[1] === '-' ? -total : total;
}

/** `1h30m0s`, as Go prints a duration of whole seconds. */
export function formatDuration(ms: number): string {
  const sec = Math.round(ms / 1000);
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** Parse a window; `startKey`/`lengthKey` name the settings in errors. */
export function parseWindow(
  start: string,
  length: string,
  startKey = 'window-start',
  lengthKey = 'window-length',
): RebootWindow {
  const m = /^\s*(?:([A-Za-z]{3})\s+)?(\d{1,2}):(\d{2})\s*$/.exec(start);
  if (!m)
    throw configError(startKey, `${JSON.stringify(start)} must be [Day ]HH:MM, e.g. "Thu 04:00" or "04:00"`);
  let day: number | undefined;
  if (m[1] !== undefined) {
    day = DAYS.indexOf(m[1].toLowerCase());
    if (day < 0)
      throw configError(startKey, `${JSON.stringify(m[1])} is not a day (sun, mon, tue, wed, thu, fri, sat)`);
  }
  const hour = Number(m[2]);
  const minute = Number(m[3]);
  if (hour > 23) throw configError(startKey, `hour ${hour} is out of range 0-23`);
  if (minute > 59) throw configError(startKey, `minute ${minute} is out of range 0-59`);
  const lengthMs = parseGoDuration(lengthKey, length);
  if (lengthMs < 0) throw configError(lengthKey, `${JSON.stringify(length)} must not be negative`);
  const period = day === undefined ? 86_400_000 : 7 * 86_400_000;
  if (lengthMs >= period) {
    throw configError(
      lengthKey,
      `${JSON.stringify(length)} must be shorter than ${day === undefined ? '24h (a daily window)' : '7 days (a weekly window)'}`,
    );
  }
  const text = `${m[1] ? `${DAYS[day!]![0]!.toUpperCase()}${DAYS[day!]!.slice(1)} ` : ''}${String(hour).padStart(2, '0')}:${m[3]} ${formatDuration(lengthMs)}`;
  return { ...(day !== undefined ? { day } : {}), hour, minute, lengthMs, text };
}

/** The wall-clock start of the window's most recent occurrence at or before `now`. */
function lastStart(w: RebootWindow, now: number, zone: Zone): Date {
  const d = new Date(now);
  const utc = zone === 'utc';
  if (utc) d.setUTCHours(w.hour, w.minute, 0, 0);
  else d.setHours(w.hour, w.minute, 0, 0);
  if (w.day !== undefined) {
    const back = ((utc ? d.getUTCDay() : d.getDay()) - w.day + 7) % 7;
    addDays(d, -back, zone);
  }
  if (d.getTime() > now) addDays(d, w.day === undefined ? -1 : -7, zone);
  return d;
}

function addDays(d: Date, n: number, zone: Zone): void {
  if (zone === 'utc') d.setUTCDate(d.getUTCDate() + n);
  else {
    const h = d.getHours();
    const min = d.getMinutes();
    d.setDate(d.getDate() + n);
    d.setHours(h, min, 0, 0); // keep the wall-clock start across a DST change
  }
}

/** ms until the window opens: 0 while it is open (locksmith's DurationToStart). */
export function msUntilOpen(w: RebootWindow, now: number, zone: Zone): number {
  const start = lastStart(w, now, zone);
  if (now < start.getTime() + w.lengthMs) return 0;
  addDays(start, w.day === undefined ? 1 : 7, zone);
  return start.getTime() - now;
}

/** Is the window open at `now`? */
export function isOpen(w: RebootWindow, now: number, zone: Zone): boolean {
  return msUntilOpen(w, now, zone) === 0;
}
