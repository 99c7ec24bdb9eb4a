/** Helpers for the embedded registry tests: temp data dirs and a fake clock. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedKvStore, type EmbeddedKvStoreOptions } from '../../../src/registry/embedded/index.js';
import type { Watch, WatchBatch } from '../../../src/registry/kv.js';

export { FakeClock } from '../../../src/lib/fake-clock.js';

/** A temp dir per test; `cleanup()` closes every store opened through `open` and removes the dirs. */
export function tempStores() {
  const dirs: string[] = [];
  const stores: EmbeddedKvStore[] = [];
  return {
    async dir(): Promise<string> {
      const d = await mkdtemp(join(tmpdir(), 'flotilla-kv-'));
      dirs.push(d);
      return d;
    },
    async open(dataDir: string, opts: EmbeddedKvStoreOptions = {}): Promise<EmbeddedKvStore> {
      const s = await EmbeddedKvStore.open({ ...opts, dataDir });
      stores.push(s);
      return s;
    },
    async cleanup(): Promise<void> {
      await Promise.all(stores.splice(0).map((s) => s.close()));
      await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}

/** Take the next `n` batches from a watch (fails the test after `ms`). */
export async function take(w: Watch, n: number, ms = 2000): Promise<WatchBatch[]> {
  const it = w[Symbol.asyncIterator]();
  const out: WatchBatch[] = [];
  const deadline = Date.now() + ms;
  while (out.length < n) {
    const left = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<never>((_, rej) => {
        timer = setTimeout(
          () => rej(new Error(`watch: got ${out.length} of ${n} batches`)),
          Math.max(0, left),
        );
      }),
    ]).finally(() => clearTimeout(timer));
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}
