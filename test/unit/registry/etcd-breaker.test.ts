/**
 * HostBreaker (src/registry/etcd-breaker.ts), the per-member policy etcd3's pool runs every request
 * through: pure, with a FakeClock. The case that made it: a watch that reconnects to a dead member
 * (the opening works, the stream then fails) must open the breaker, so the next reconnect goes to
 * another member. With cockatiel's ConsecutiveBreaker, which counts the opening as a success, it
 * never did.
 */
import { EventEmitter } from 'node:events';
import { circuitBreaker, ConsecutiveBreaker, handleAll, isBrokenCircuitError } from 'cockatiel';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/lib/fake-clock.js';
import { HostBreaker } from '../../../src/registry/etcd-breaker.js';

/** What etcd3's stream openers return: a duplex that errors later. */
const stream = () => Object.assign(new EventEmitter(), { write: () => true });
const unavailable = () => new Error('14 UNAVAILABLE: No connection established');

/** One watch reconnect to a dead member, as etcd3 does it: open the stream, then markFailed. */
async function reconnectToDeadMember(policy: {
  execute: HostBreaker['execute'];
}): Promise<'opened' | 'skipped'> {
  try {
    await policy.execute(() => stream());
  } catch (err) {
    if (isBrokenCircuitError(err)) return 'skipped';
    throw err;
  }
  // markFailed: execute a function that throws the stream's error.
  await policy.execute(() => Promise.reject(unavailable())).catch(() => undefined);
  return 'opened';
}

describe('HostBreaker', () => {
  it('opens after 3 stream failures in a row, so the 4th reconnect skips the dead member', async () => {
    const clock = new FakeClock();
    const b = new HostBreaker({ counts: () => true, clock });
    const tries = [];
    for (let i = 0; i < 4; i++) tries.push(await reconnectToDeadMember(b));
    expect(tries).toEqual(['opened', 'opened', 'opened', 'skipped']);
    expect(b.state).toBe('open');
  });

  it("(cockatiel's ConsecutiveBreaker, for contrast, never opens on the same sequence)", async () => {
    const cb = circuitBreaker(handleAll, { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) });
    const tries = [];
    for (let i = 0; i < 6; i++) tries.push(await reconnectToDeadMember(cb));
    expect(tries).toEqual(Array(6).fill('opened'));
  });

  it('half-open after the wait: one more failure opens it again, a unary success closes it', async () => {
    const clock = new FakeClock();
    const b = new HostBreaker({ counts: () => true, clock, halfOpenAfterMs: 1000 });
    for (let i = 0; i < 3; i++) await b.execute(() => Promise.reject(unavailable())).catch(() => undefined);
    expect(b.state).toBe('open');
    await expect(b.execute(() => 'x')).rejects.toSatisfy(isBrokenCircuitError);
    clock.advance(1000);
    expect(b.state).toBe('half-open');
    await b.execute(() => Promise.reject(unavailable())).catch(() => undefined);
    expect(b.state).toBe('open');
    clock.advance(1000);
    // A stream opened while half-open proves nothing: still half-open.
    await b.execute(() => stream());
    expect(b.state).toBe('half-open');
    expect(await b.execute(() => 'ok')).toBe('ok');
    expect(b.state).toBe('closed');
  });

  it('errors that do not count (not recoverable) pass through without opening it', async () => {
    const b = new HostBreaker({ counts: (e) => e.message.startsWith('14 '), clock: new FakeClock() });
    for (let i = 0; i < 5; i++)
      await expect(b.execute(() => Promise.reject(new Error('9 FAILED_PRECONDITION')))).rejects.toThrow(
        'FAILED_PRECONDITION',
      );
    expect(b.state).toBe('closed');
    // Unary successes in between reset the count: two failures, a success, two failures stay closed.
    for (const ok of [false, false, true, false, false])
      await b.execute(() => (ok ? 1 : Promise.reject(unavailable()))).catch(() => undefined);
    expect(b.state).toBe('closed');
  });
});
