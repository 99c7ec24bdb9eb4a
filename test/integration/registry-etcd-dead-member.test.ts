/**
 * The etcd backend with its first endpoint dead (connection refused) and a live member after it:
 * the layout of an agent whose own member died (local member first, the others from etcd's member
 * list). A lease renewed every second, as the agent renews its presence, must be renewed every
 * time, on the live member. It was not: each renewal met the dead member's breaker half-open again
 * (it re-opens for 1 s after every failure), went to the dead member and failed, so the lease ran
 * out (cluster-etcd, "one etcd member of three lost", in the local-member layout).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKvStore } from '../../src/registry/etcd.js';
import { etcdBinary, freePort, startSingleEtcd, type SingleEtcd } from '../support/etcd-single.js';

const haveEtcd = etcdBinary() !== undefined;
if (!haveEtcd && process.env.TESTENV_REQUIRED === '1')
  throw new Error('etcd is not installed: run test/env/up.sh');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

(haveEtcd ? describe : describe.skip)('etcd backend: first endpoint dead, a live member after it', () => {
  let etcd: SingleEtcd;
  beforeAll(async () => {
    etcd = await startSingleEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it(
    'a lease renewed every second is renewed every time, on the live member',
    { timeout: 30_000 },
    async () => {
      const store = new EtcdKvStore({
        // A port nothing listens on: connects are refused, as to a member that died.
        endpoints: [`http://127.0.0.1:${await freePort()}`, etcd.endpoint],
        requestTimeoutMs: 2000,
      });
      try {
        const lease = await store.grantLease(3);
        const results: string[] = [];
        for (let i = 0; i < 8; i++) {
          const t0 = performance.now();
          const r = await store.keepAliveOnce(lease.id, { timeoutMs: 1000 }).then(
            (ttl) => `ok ttl=${ttl}`,
            (e: Error) => `failed: ${e.message}`,
          );
          results.push(`${r} (${(performance.now() - t0).toFixed(0)} ms)`);
          await sleep(1000);
        }
        console.log(`[dead-member] renewals:\n  ${results.join('\n  ')}`);
        expect(
          results.filter((r) => !r.startsWith('ok')),
          'renewals that failed',
        ).toEqual([]);
        // The lease is alive on the live member.
        await store.put('k', 'v', { lease: lease.id });
        expect((await store.get('k'))?.value).toBe('v');
      } finally {
        await store.close();
      }
    },
  );
});
