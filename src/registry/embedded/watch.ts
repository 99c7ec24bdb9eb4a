/**
 * Watches of the embedded store. A watch first catches up from the history (revisions from its start
 * up to the last published one), then receives every newly published revision. The store publishes a
 * revision only once its log record is durable, so a watcher never sees a change that a crash could
 * take back. All of it runs synchronously on the event loop, so nothing can slip between catch-up and
 * registration.
 */
import { FlotillaError } from '../../lib/errors.js';
import { AsyncQueue } from '../../lib/queue.js';
import type { Watch, WatchBatch, WatchEvent } from '../kv.js';
import type { History, RevisionEntry } from './history.js';

class Watcher {
  readonly queue: AsyncQueue<WatchBatch>;

  constructor(
    private readonly prefix: string,
    private readonly prevKv: boolean,
    /** Next revision to deliver. */
    private next: number,
    onReturn: () => void,
  ) {
    this.queue = new AsyncQueue<WatchBatch>(onReturn);
  }

  deliver(entry: RevisionEntry): void {
    if (entry.revision < this.next) return;
    this.next = entry.revision + 1;
    const events: WatchEvent[] = [];
    for (const e of entry.events) {
      if (!e.kv.key.startsWith(this.prefix)) continue;
      const ev: WatchEvent = { type: e.type, kv: { ...e.kv } };
      if (this.prevKv && e.prevKv) ev.prevKv = { ...e.prevKv };
      events.push(ev);
    }
    if (events.length) this.queue.push({ revision: entry.revision, events });
  }
}

export class WatchHub {
  private readonly watchers = new Set<Watcher>();

  constructor(private readonly history: History) {}

  get size(): number {
    return this.watchers.size;
  }

  /**
   * Start a watch at revision `from` (≥ 1); `published` is the last revision already published. A
   * start before the history's is compacted: the iterator throws E_REGISTRY_COMPACTED.
   */
  open(prefix: string, from: number, prevKv: boolean, published: number): Watch {
    const w: Watcher = new Watcher(prefix, prevKv, from, () => this.watchers.delete(w));
    if (from < this.history.start) {
      const compactRevision = this.history.start - 1;
      w.queue.fail(
        new FlotillaError(
          'E_REGISTRY_COMPACTED',
          `watch from revision ${from}: history up to revision ${compactRevision} is compacted`,
          { compactRevision, revision: from },
        ),
      );
    } else {
      for (const entry of this.history.slice(from, published)) w.deliver(entry);
      this.watchers.add(w);
    }
    return this.handle(w);
  }

  /** A watch that ends at once with `err` (store closed or failed). */
  failed(err: unknown): Watch {
    const w: Watcher = new Watcher('', false, 0, () => undefined);
    w.queue.fail(err);
    return this.handle(w);
  }

  /** A revision became durable: deliver it. */
  publish(entry: RevisionEntry): void {
    for (const w of this.watchers) w.deliver(entry);
  }

  /** End every watch cleanly (close) or with an error (store failure). */
  stopAll(err?: unknown): void {
    for (const w of this.watchers) {
      if (err === undefined) w.queue.end();
      else w.queue.fail(err);
    }
    this.watchers.clear();
  }

  private handle(w: Watcher): Watch {
    return {
      close: () => {
        this.watchers.delete(w);
        w.queue.end();
      },
      [Symbol.asyncIterator]: () => w.queue,
    };
  }
}

/** A watch whose real watch starts later (the store is still opening); fails with the open error. */
export function deferredWatch(inner: Promise<Watch>): Watch {
  let started: Watch | undefined;
  let stopped = false;
  const ready = inner.then((w) => {
    started = w;
    if (stopped) w.close();
    return w;
  });
  ready.catch(() => undefined);
  const stop = (): void => {
    stopped = true;
    started?.close();
  };
  return {
    close: stop,
    [Symbol.asyncIterator]: (): AsyncIterator<WatchBatch> => ({
      next: async () => (await ready)[Symbol.asyncIterator]().next(),
      return: () => {
        stop();
        return Promise.resolve({ value: undefined, done: true });
      },
    }),
  };
}
