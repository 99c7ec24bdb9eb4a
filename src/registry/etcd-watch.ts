/**
 * One etcd watch for EtcdKvStore: etcd3 Watcher events → WatchBatch queue, resuming from the last
 * revision *delivered* after the stream reconnects (etcd3's own resume point may be past events not
 * yet delivered), with compaction reported as E_REGISTRY_COMPACTED.
 */
import type { Watcher } from 'etcd3';
import type * as RPC from 'etcd3/lib/rpc.js';
import { FlotillaError } from '../lib/errors.js';
import { AsyncQueue } from '../lib/queue.js';
import { mapError } from './etcd-errors.js';
import type { KeyValue, Watch, WatchBatch, WatchOptions } from './kv.js';

/** What a watch needs from its store. */
export interface WatchSource {
  buildWatcher(prefix: string, fromRevision: number | undefined, prevKv: boolean): Watcher;
  toKv(raw: RPC.IKeyValue): KeyValue;
  /** True when `rev` was compacted away. */
  isCompacted(rev: number): Promise<boolean>;
}

/** One watch: etcd3 Watcher events → WatchBatch queue, with our own resume revision. */
export class EtcdWatch implements Watch {
  private readonly queue: AsyncQueue<WatchBatch>;
  private readonly watcher: Watcher;
  /** Last revision fully delivered to the consumer (resume from +1). */
  private delivered: number | undefined;

  constructor(
    private readonly store: WatchSource,
    prefix: string,
    opts: WatchOptions,
    private readonly onClose: (w: EtcdWatch) => void,
  ) {
    this.queue = new AsyncQueue<WatchBatch>(() => this.close());
    if (opts.fromRevision !== undefined) this.delivered = opts.fromRevision - 1;
    this.watcher = store.buildWatcher(prefix, opts.fromRevision, opts.prevKv ?? false);
    this.watcher.on('connected', (res: RPC.IWatchResponse) => {
      // Created without a start revision: the watch begins after the revision it was created at.
      this.delivered ??= Number(res.header.revision);
    });
    this.watcher.on('data', (res: RPC.IWatchResponse) => this.onData(res));
    this.watcher.on('disconnected', () => {
      // Reconnect (done by etcd3 after this event) must resume right after what we delivered.
      if (this.delivered !== undefined) this.watcher.request.start_revision = String(this.delivered + 1);
    });
    this.watcher.on('error', (err: Error) => {
      void this.onError(err);
    });
  }

  private onData(res: RPC.IWatchResponse): void {
    if (res.events.length === 0) {
      // A progress notification: every event up to header.revision was sent.
      const rev = Number(res.header.revision);
      if (this.delivered === undefined || rev > this.delivered) this.delivered = rev;
      return;
    }
    let batch: WatchBatch | undefined;
    for (const ev of res.events) {
      const kv = this.store.toKv(ev.kv);
      const rev = kv.modRevision;
      if (this.delivered !== undefined && rev <= this.delivered) continue; // replayed after reconnect
      if (!batch || batch.revision !== rev) {
        if (batch) this.push(batch);
        batch = { revision: rev, events: [] };
      }
      const type = ev.type === 'Delete' || (ev.type as unknown) === 1 ? 'delete' : 'put';
      const out: WatchBatch['events'][number] = { type, kv };
      if (ev.prev_kv) out.prevKv = this.store.toKv(ev.prev_kv);
      batch.events.push(out);
    }
    if (batch) this.push(batch);
  }

  private push(batch: WatchBatch): void {
    this.delivered = batch.revision;
    this.queue.push(batch);
  }

  private async onError(err: Error): Promise<void> {
    const next = (this.delivered ?? 0) + 1;
    const compacted = await this.store.isCompacted(next).catch(() => false);
    this.queue.fail(
      compacted
        ? new FlotillaError('E_REGISTRY_COMPACTED', `watch: revision ${next} was compacted`, {
            revision: next,
          })
        : mapError(err, 'watch'),
    );
    this.close();
  }

  close(): void {
    if (this.queue.closed && !this.watcher.listenerCount('data')) return;
    this.watcher.removeAllListeners('data');
    this.watcher.on('error', () => undefined);
    this.queue.end();
    this.onClose(this);
    void this.watcher.cancel().catch(() => undefined);
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchBatch> {
    return this.queue;
  }
}
