/**
 * One watch loop for the views that keep a local copy of part of the registry (ClusterView,
 * ServicesView): watch from the revision after the last one applied, apply each batch in order,
 * and on a broken watch retry with backoff (doubling to 5 s) from the same revision, keeping the copy
 * meanwhile. A compacted revision means the copy must be read afresh (`resync`) before watching on.
 *
 * Availability (optional): up on every batch; down when the watch breaks; after each backoff a cheap
 * probe (the store's current revision) brings it back up even when nothing changes.
 */
import { isCode } from '../lib/errors.js';
import type { WatchEvent } from './kv.js';
import type { Registry } from './registry.js';

export interface FollowOptions {
  registry: Registry;
  /** Key prefix to watch ('' = everything). */
  prefix?: string;
  /** The last revision applied; the watch (re)starts after it. */
  revision(): number;
  apply(revision: number, events: WatchEvent[]): void;
  /** Read the whole copy again (after a compaction). */
  resync(): Promise<void>;
  error(err: Error): void;
  /** Availability changes (see above); omitted: no probing. */
  available?(up: boolean): void;
  /** First retry delay (ms); doubles up to 5 s. */
  backoffMs: number;
}

export class RegistryFollower {
  private stopped = false;
  private watch: { close(): void } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly o: FollowOptions) {}

  /** Runs until `stop()`; never rejects. */
  async run(): Promise<void> {
    const o = this.o;
    let backoff = o.backoffMs;
    while (!this.stopped) {
      const w = o.registry.watch({ prefix: o.prefix ?? '', fromRevision: o.revision() + 1 });
      this.watch = w;
      try {
        for await (const batch of w) {
          backoff = o.backoffMs;
          o.available?.(true);
          o.apply(batch.revision, batch.events);
        }
        if (this.stopped) return;
      } catch (err) {
        if (this.stopped) return;
        o.error(err as Error);
        o.available?.(false);
        if (isCode(err, 'E_REGISTRY_COMPACTED')) {
          try {
            await o.resync();
            continue;
          } catch (e) {
            o.error(e as Error);
          }
        }
      }
      await new Promise<void>((r) => {
        this.wake = r;
        this.retryTimer = setTimeout(r, backoff);
      });
      if (this.stopped) return;
      backoff = Math.min(backoff * 2, 5000);
      if (o.available) {
        try {
          await o.registry.store.revision();
          o.available(true);
        } catch {
          /* still down */
        }
      }
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.wake?.();
    this.watch?.close();
  }
}
