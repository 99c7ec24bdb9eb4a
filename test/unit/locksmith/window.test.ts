/**
 * Reboot windows with a fixed clock: edges, the week wrap, daily windows past midnight, UTC vs the
 * local zone (TZ is set per process, so local-zone cases build their instants with local getters).
 */
import { describe, expect, it } from 'vitest';
import { isOpen, msUntilOpen, parseGoDuration, parseWindow } from '../../../src/locksmith/window.js';

const H = 3_600_000;
const M = 60_000;
/** 2026-12-03 is a Thursday. */
const utc = (d: number, h: number, m = 0, s = 0) => Date.UTC(2026, 11, d, h, m, s);

describe('parseGoDuration', () => {
  it.each([
    ['1h30m', 90 * M],
    ['90m', 90 * M],
    ['1.5h', 90 * M],
    ['45s', 45_000],
    ['300ms', 300],
    ['0', 0],
    ['1h0m0s', H],
  ])('%s', (text, ms) => expect(parseGoDuration('k', text)).toBe(ms));
  it.each(['', '1', 'h', '1d', '1h 30m', 'soon'])('refuses %j naming the key', (text) => {
    expect(() => parseGoDuration('window-length', text)).toThrow(/^window-length: /);
  });
});

describe('parseWindow', () => {
  it('reads a weekly and a daily window', () => {
    expect(parseWindow('Thu 04:00', '1h30m')).toMatchObject({
      day: 4,
      hour: 4,
      minute: 0,
      lengthMs: 90 * M,
      text: 'Thu 04:00 1h30m0s',
    });
    expect(parseWindow('thu 04:00', '1h')).toMatchObject({ day: 4 });
    expect(parseWindow('23:30', '1h')).toEqual({ hour: 23, minute: 30, lengthMs: H, text: '23:30 1h0m0s' });
  });
  it.each([
    ['Thx 04:00', '1h', /window-start: "Thx" is not a day/],
    ['24:00', '1h', /window-start: hour 24 is out of range 0-23/],
    ['04:60', '1h', /window-start: minute 60 is out of range 0-59/],
    ['4am', '1h', /window-start: "4am" must be \[Day \]HH:MM/],
    ['04:00', '-1h', /window-length: "-1h" must not be negative/],
    ['04:00', '24h', /window-length: "24h" must be shorter than 24h/],
    ['Mon 04:00', '168h', /window-length: "168h" must be shorter than 7 days/],
  ])('refuses %s %s', (start, length, msg) => {
    expect(() => parseWindow(start, length)).toThrow(msg);
  });
  it('accepts a weekly window longer than a day', () => {
    expect(parseWindow('Sat 22:00', '48h').lengthMs).toBe(48 * H);
  });
});

describe('msUntilOpen (UTC)', () => {
  const thu = parseWindow('Thu 04:00', '1h30m');
  it.each([
    ['at the start edge: open', utc(3, 4, 0), 0],
    ['inside', utc(3, 5, 0), 0],
    ['one second before the end: open', utc(3, 5, 29, 59), 0],
    ['at the end edge: closed until next week', utc(3, 5, 30), 7 * 24 * H - 90 * M],
    ['one minute before the start', utc(3, 3, 59), M],
    ['the day before', utc(2, 4, 0), 24 * H],
    ['Saturday: wraps over the week end', utc(5, 4, 0), 5 * 24 * H],
  ])('Thu 04:00 1h30m, %s', (_name, now, want) => {
    expect(msUntilOpen(thu, now, 'utc')).toBe(want);
  });

  it('a window that wraps from Saturday into Sunday is open on Sunday morning', () => {
    const w = parseWindow('Sat 23:00', '3h');
    expect(isOpen(w, utc(6, 1, 0), 'utc')).toBe(true); // 2026-12-06 is a Sunday
    expect(isOpen(w, utc(6, 2, 0), 'utc')).toBe(false);
    expect(msUntilOpen(w, utc(6, 2, 0), 'utc')).toBe(6 * 24 * H + 21 * H);
  });

  it('a daily window past midnight', () => {
    const w = parseWindow('23:30', '1h');
    expect(isOpen(w, utc(3, 0, 15), 'utc')).toBe(true);
    expect(isOpen(w, utc(3, 0, 30), 'utc')).toBe(false);
    expect(msUntilOpen(w, utc(3, 0, 30), 'utc')).toBe(23 * H);
    expect(msUntilOpen(w, utc(3, 23, 0), 'utc')).toBe(30 * M);
  });
});

describe('msUntilOpen (local zone)', () => {
  it('opens at the local wall-clock time, whatever the zone offset', () => {
    const w = parseWindow('04:00', '1h');
    const start = new Date(2026, 11, 3, 4, 0, 0).getTime(); // local 04:00
    expect(msUntilOpen(w, start, 'local')).toBe(0);
    expect(msUntilOpen(w, start - M, 'local')).toBe(M);
    expect(isOpen(w, start + H, 'local')).toBe(false);
  });

  it('keeps the local start time across a DST change (Europe/Berlin, 2026-03-29: a 23 h day)', () => {
    const tz = process.env.TZ;
    process.env.TZ = 'Europe/Berlin';
    try {
      const w = parseWindow('Sun 04:00', '1h');
      const sat = new Date(2026, 2, 28, 12, 0, 0).getTime(); // Sat 12:00 CET
      expect(msUntilOpen(w, sat, 'local')).toBe(16 * H - H); // 16 wall-clock hours, one of them skipped
      const opens = new Date(sat + msUntilOpen(w, sat, 'local'));
      expect([opens.getDay(), opens.getHours(), opens.getMinutes()]).toEqual([0, 4, 0]);
      // In UTC the same window knows no DST: Sat 11:00Z → Sun 04:00Z is 17 h.
      expect(msUntilOpen(w, sat, 'utc')).toBe(17 * H);
      // A week later, from just after the window: one week minus the hour of DST.
      const after = new Date(2026, 2, 22, 5, 0, 0).getTime();
      expect(msUntilOpen(w, after, 'local')).toBe(7 * 24 * H - H - H);
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });
});
