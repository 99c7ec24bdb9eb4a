/**
 * Child process of embedded-crash.test.ts: opens the store and writes from 64 concurrent workers
 * until it is killed, printing every acknowledged write on stdout, one line each:
 *
 *   A <key> <value> <revision>      a put of a new key was acknowledged
 *   D <key> <revision>              a delete of a key printed before was acknowledged
 *   N <worker> <count> <revision>   a compare-and-swap increment of ctr/<worker> was acknowledged
 *   L <lease> <key> <revision>      a put of <key> attached to lease <lease> (TTL 1h) was acknowledged
 *                                   (early in every worker: i = 2, 52, …, so any round of a few
 *                                   hundred acknowledgements has some)
 *   C <phase>                       compaction reached <phase>
 *
 * Usage: node --import tsx embedded-crash-child.ts <dataDir> <tag>
 */
import { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { cmp, op } from '../../../src/registry/kv.js';

const [dataDir, tag] = process.argv.slice(2);
if (!dataDir || !tag) throw new Error('usage: embedded-crash-child.ts <dataDir> <tag>');

const say = (line: string): void => void process.stdout.write(`${line}\n`);

const store = await EmbeddedKvStore.open({
  dataDir,
  compactBytes: 16 * 1024,
  hooks: { onCompaction: (phase) => say(`C ${phase}`) },
});

async function worker(w: number): Promise<never> {
  const ctrKey = `ctr/${w}`;
  let ctr = await store.get(ctrKey);
  const mine: string[] = [];
  for (let i = 0; ; i++) {
    if (i % 7 === 3) {
      const n = ctr ? Number(ctr.value) + 1 : 1;
      const r = await store.txn({
        compare: [cmp.modRev(ctrKey, ctr?.modRevision ?? 0)],
        success: [op.put(ctrKey, String(n))],
        failure: [op.get(ctrKey)],
      });
      if (!r.succeeded) throw new Error(`counter ${ctrKey} changed behind its only writer`);
      say(`N ${w} ${n} ${r.revision}`);
      ctr = await store.get(ctrKey);
    } else if (i % 11 === 5 && mine.length > 0) {
      const key = mine.shift()!;
      const r = await store.delete(key);
      if (r.deleted !== 1) throw new Error(`delete of ${key} deleted ${r.deleted}`);
      say(`D ${key} ${r.revision}`);
    } else if (i % 50 === 2) {
      const lease = await store.grantLease(3600);
      const key = `lease/${tag}/${w}/${i}`;
      const r = await store.put(key, lease.id, { lease: lease.id });
      say(`L ${lease.id} ${key} ${r.revision}`);
    } else {
      const key = `u/${tag}/${w}/${i}`;
      const value = `v-${tag}-${w}-${i}-${'x'.repeat(i % 40)}`;
      const r = await store.put(key, value);
      if (i % 3 === 0) mine.push(key);
      say(`A ${key} ${value} ${r.revision}`);
    }
  }
}

await Promise.all(Array.from({ length: 64 }, (_, w) => worker(w)));
