/**
 * LeaseKeeper on the Clock port: renewals every ttl/3 by the clock (not the wall), and a lease the
 * registry no longer knows is granted again with `lost` then `granted`. The store is the real
 * embedded registry, sharing the same FakeClock for its lease deadlines.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LeaseKeeper } from '../../../src/registry/lease.js';
import { FakeClock, tempStores } from './embedded-support.js';

const stores = tempStores();
afterEach(() => stores.cleanup());

/** Let the keeper's async renewal (a store round trip on disk) finish. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(cond()).toBe(true);
}

describe('LeaseKeeper (fake clock)', () => {
  it('renews every ttl/3 by its clock and re-grants a lease the registry lost', async () => {
    const clock = new FakeClock();
    const store = await stores.open(await stores.dir(), { clock });
    const keeper = new LeaseKeeper(store, 3, clock);
    const events: string[] = [];
    keeper.on('renewed', () => events.push('renewed'));
    keeper.on('lost', () => events.push('lost'));
    keeper.on('granted', () => events.push('granted'));
    const first = await keeper.start();
    expect(keeper.lastRenewed).toBe(clock.now());
    expect(events).toEqual(['granted']);

    clock.advance(999); // ttl/3 = 1 s: not yet
    await new Promise((r) => setTimeout(r, 20));
    expect(events).toEqual(['granted']);
    clock.advance(1);
    await until(() => events.length === 2);
    expect(events).toEqual(['granted', 'renewed']);
    expect(keeper.lastRenewed).toBe(clock.now());
    expect(keeper.id).toBe(first);

    await store.revokeLease(first); // the registry forgot it (expired during an outage, say)
    clock.advance(1000);
    await until(() => events.length === 5);
    expect(events.slice(2)).toEqual(['lost', 'granted', 'renewed']);
    expect(keeper.id).not.toBe(first);
    await keeper.stop(true);
    expect(clock.timers).toBe(0);
  });
});
