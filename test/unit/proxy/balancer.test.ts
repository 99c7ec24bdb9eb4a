/** The proxy's endpoint selection: least connections, round-robin ties, back-off, draining (pure). */
import { describe, expect, it } from 'vitest';
import { Balancer } from '../../../src/proxy/balancer.js';

describe('Balancer', () => {
  it('rotates across endpoints with equal load', () => {
    const b = new Balancer();
    b.update(['a:1', 'b:1', 'c:1']);
    const picks = Array.from({ length: 6 }, () => b.pick(0));
    expect(picks).toEqual(['a:1', 'b:1', 'c:1', 'a:1', 'b:1', 'c:1']);
  });

  it('picks the endpoint with the fewest active connections', () => {
    const b = new Balancer();
    b.update(['a:1', 'b:1', 'c:1']);
    b.acquire('a:1');
    b.acquire('a:1');
    b.acquire('b:1');
    expect(b.pick(0)).toBe('c:1');
    b.acquire('c:1');
    b.acquire('c:1');
    expect(b.pick(0)).toBe('b:1');
    b.release('a:1');
    b.release('a:1');
    expect(b.pick(0)).toBe('a:1');
  });

  it('returns undefined with no endpoint, or when every one was tried', () => {
    const b = new Balancer();
    expect(b.pick(0)).toBeUndefined();
    b.update(['a:1', 'b:1']);
    expect(b.pick(0, new Set(['a:1', 'b:1']))).toBeUndefined();
    expect(b.pick(0, new Set(['a:1']))).toBe('b:1');
  });

  it('skips an endpoint in back-off while another exists, and uses it when it is the only one', () => {
    const b = new Balancer();
    b.update(['a:1', 'b:1']);
    b.failed('a:1', 1000);
    for (let i = 0; i < 4; i++) expect(b.pick(1100)).toBe('b:1');
    expect(b.pick(1100, new Set(['b:1']))).toBe('a:1');
    // Back-off is over after 500 ms; doubles on the next failure; success clears it.
    expect(new Set([b.pick(1500), b.pick(1500)])).toEqual(new Set(['a:1', 'b:1']));
    b.failed('a:1', 2000);
    expect(b.snapshot().find((e) => e.address === 'a:1')!.backoffUntil).toBe(3000);
    b.succeeded('a:1');
    expect(b.snapshot().find((e) => e.address === 'a:1')!.backoffUntil).toBe(0);
  });

  it('caps the back-off at 10 s', () => {
    const b = new Balancer();
    b.update(['a:1']);
    for (let i = 0; i < 20; i++) b.failed('a:1', 0);
    expect(b.snapshot()[0]!.backoffUntil).toBe(10_000);
  });

  it('drains a removed endpoint: never picked, kept while it has connections, back when re-added', () => {
    const b = new Balancer();
    b.update(['a:1', 'b:1']);
    b.acquire('a:1');
    expect(b.update(['b:1'])).toEqual(['a:1']);
    for (let i = 0; i < 3; i++) expect(b.pick(0)).toBe('b:1');
    expect(b.snapshot().find((e) => e.address === 'a:1')).toMatchObject({ draining: true, active: 1 });
    b.release('a:1');
    expect(b.snapshot().find((e) => e.address === 'a:1')).toBeUndefined();
    // An endpoint without connections is forgotten at once; one that comes back is live again.
    b.acquire('b:1');
    b.update([]);
    expect(b.pick(0)).toBeUndefined();
    expect(b.update(['b:1'])).toEqual([]);
    expect(b.snapshot()).toEqual([expect.objectContaining({ address: 'b:1', draining: false, active: 1 })]);
    expect(b.pick(0)).toBe('b:1');
  });

  it('never counts below zero', () => {
    const b = new Balancer();
    b.update(['a:1']);
    b.release('a:1');
    b.release('zzz');
    expect(b.snapshot()[0]!.active).toBe(0);
  });
});
