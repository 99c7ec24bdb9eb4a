import { expect, it } from 'vitest';
import { Backoff, sleep } from '../../../src/lib/backoff.js';

it('doubles from min to max, and reset starts over', () => {
  const b = new Backoff(250, 5000);
  expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([
    250, 500, 1000, 2000, 4000, 5000, 5000,
  ]);
  expect(b.peek()).toBe(5000);
  b.reset();
  expect(b.next()).toBe(250);
});

it('refuses bounds that make no backoff', () => {
  expect(() => new Backoff(0, 10)).toThrow(RangeError);
  expect(() => new Backoff(10, 5)).toThrow(/min \(10\) <= max \(5\)/);
  expect(() => new Backoff(10, 20, 0.5)).toThrow(RangeError);
});

it('sleep waits, and an abort ends it at once (also one given already aborted)', async () => {
  const t0 = performance.now();
  await sleep(30);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
  const ac = new AbortController();
  const p = sleep(60_000, ac.signal);
  ac.abort();
  await expect(p).rejects.toThrow('aborted');
  await expect(sleep(10, ac.signal)).rejects.toThrow('aborted');
});
