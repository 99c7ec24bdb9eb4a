/**
 * The reboot lock (src/locksmith/lock.ts) against one KvStore backend; run unchanged against the
 * embedded store (test/unit/locksmith/lock.test.ts) and a real etcd (test/integration/
 * locksmith-lock-etcd.test.ts), the way kv-contract.ts runs the registry contract.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCode } from '../../src/lib/errors.js';
import type { KvStore } from '../../src/registry/kv.js';
import { RebootLock } from '../../src/locksmith/lock.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function lockError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isCode(err, 'E_LOCK')) return err.message;
    throw err;
  }
  throw new Error('expected E_LOCK');
}

export function lockContract(name: string, open: () => Promise<KvStore>): void {
  describe(`reboot lock: ${name}`, () => {
    let store: KvStore;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store?.close();
    });
    const group = () => `g-${randomUUID().slice(0, 8)}`;

    it('starts as locksmith did: available 1, max 1, no holders, stored as locksmith stored it', async () => {
      const l = new RebootLock(store, group());
      expect(await l.status()).toMatchObject({ semaphore: 1, max: 1, holders: [] });
      const { id } = await store.grantLease(30);
      await l.lock('m1', id);
      expect(JSON.parse((await store.get(l.semaphoreKey))!.value)).toEqual({
        semaphore: 0,
        max: 1,
        holders: ['m1'],
      });
      await l.unlock('m1');
      expect(JSON.parse((await store.get(l.semaphoreKey))!.value)).toEqual({
        semaphore: 1,
        max: 1,
        holders: null,
      });
      expect(await store.get(`${l.holderPrefix}m1`)).toBeUndefined();
    });

    it('max 1: a second holder is refused with locksmith\'s message; the same holder gets "holder exists"', async () => {
      const l = new RebootLock(store, group());
      const { id } = await store.grantLease(30);
      await l.lock('m1', id);
      expect(await lockError(l.lock('m2', id))).toBe('semaphore is at 0');
      expect(await lockError(l.lock('m1', id))).toBe('holder exists');
      expect(await lockError(l.unlock('m2'))).toBe('holder does not exist');
      await l.unlock('m1');
      await l.lock('m2', id);
      expect((await l.status()).holders).toEqual(['m2']);
    });

    it('set-max 2 admits two holders, sorted; lowering max below the holders makes it negative', async () => {
      const l = new RebootLock(store, group());
      const { id } = await store.grantLease(30);
      expect(await l.setMax(2)).toEqual({ oldMax: 1, max: 2 });
      await l.lock('mb', id);
      await l.lock('ma', id);
      expect(await l.status()).toMatchObject({ semaphore: 0, max: 2, holders: ['ma', 'mb'] });
      expect(await l.setMax(1)).toEqual({ oldMax: 2, max: 1 });
      expect(await l.status()).toMatchObject({ semaphore: -1, max: 1 });
      expect(await lockError(l.lock('mc', id))).toBe('semaphore is at -1');
    });

    it('groups are independent semaphores', async () => {
      const a = new RebootLock(store, group());
      const b = new RebootLock(store, group());
      const { id } = await store.grantLease(30);
      await a.lock('m1', id);
      await b.lock('m2', id);
      expect((await a.status()).holders).toEqual(['m1']);
      expect((await b.status()).holders).toEqual(['m2']);
    });

    it('a lock is never left held: a holder whose lease is gone no longer holds, and its slot comes back', async () => {
      const l = new RebootLock(store, group());
      const gone = await store.grantLease(30);
      const alive = await store.grantLease(30);
      await l.lock('dead', gone.id, { bootId: 'b1' });
      expect((await l.holder('dead'))?.bootId).toBe('b1');
      await store.revokeLease(gone.id); // the holder's machine went away
      expect(await l.status()).toMatchObject({ semaphore: 1, holders: [] });
      await l.lock('next', alive.id);
      expect(JSON.parse((await store.get(l.semaphoreKey))!.value)).toEqual({
        semaphore: 0,
        max: 1,
        holders: ['next'],
      });
    });

    it('a lease that expires by itself (TTL) releases the lock', async () => {
      const l = new RebootLock(store, group());
      const short = await store.grantLease(1);
      await l.lock('m1', short.id);
      expect((await l.status()).holders).toEqual(['m1']);
      const deadline = Date.now() + 8000;
      while ((await l.status()).holders.length > 0 && Date.now() < deadline) await sleep(200);
      expect(await l.status()).toMatchObject({ semaphore: 1, holders: [] });
    });

    it('a lock taken with an unknown lease writes nothing', async () => {
      const l = new RebootLock(store, group());
      const dead = await store.grantLease(30);
      await store.revokeLease(dead.id);
      await expect(l.lock('m1', dead.id)).rejects.toSatisfy((e) => isCode(e, 'E_LEASE_NOT_FOUND'));
      expect(await l.status()).toMatchObject({ semaphore: 1, holders: [] });
    });

    it('concurrent lockers with max 1: exactly one wins', async () => {
      const l = new RebootLock(store, group());
      const { id } = await store.grantLease(30);
      const results = await Promise.allSettled(
        ['m1', 'm2', 'm3', 'm4', 'm5'].map((m) => new RebootLock(store, l.group).lock(m, id)),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const st = await l.status();
      expect(st.semaphore).toBe(0);
      expect(st.holders).toHaveLength(1);
    });

    it('a semaphore value of another shape is refused naming the key and field', async () => {
      const l = new RebootLock(store, group());
      await store.put(l.semaphoreKey, JSON.stringify({ semaphore: 'x', max: 1, holders: null }));
      await expect(l.status()).rejects.toThrow(`${l.semaphoreKey}: "semaphore" must be an integer`);
    });
  });
}
