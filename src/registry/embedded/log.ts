/**
 * The log writer: appends records to the current segment with group commit.
 *
 * Records are queued into the open batch. One flush runs at a time: it seals the open batch, writes
 * it as ONE frame (frame.ts) with one write, makes it durable with ONE fdatasync, then resolves the
 * batch's promise, which every record of the batch shares. Records appended while a flush is in
 * flight wait in the next batch; so with 64 concurrent writers a flush carries ~64 records. After a
 * flush the next one starts on the next turn of the event loop (setImmediate), so the writers just
 * released get to queue their next records into it first.
 *
 * `rotate()` ends the current segment after the records queued so far: once they are durable the
 * next segment is created (header written and fsynced, directory fsynced) and later records go there.
 *
 * Any I/O error is fatal for the writer: the in-memory state already holds records the disk may not,
 * so every pending and later append rejects with E_REGISTRY_UNAVAILABLE.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '../../lib/errors.js';
import { SEGMENT_MAGIC, encodeFrame } from './frame.js';
import { segmentName, syncDir } from './files.js';

interface Batch {
  records: string[];
  lastSeq: number;
  rotateAfter: boolean;
  promise: Promise<void>;
  /** `promise` bounded by the timeout, shared by the waiters that started before it timed out. */
  bounded?: Promise<void> | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // callers that await it see the rejection; nobody else must
  return { records: [], lastSeq: 0, rotateAfter: false, promise, resolve, reject };
}

export interface LogWriterOptions {
  dir: string;
  /** Current segment number, its open handle (positioned by `size`) and size in bytes. */
  segment: number;
  handle: FileHandle;
  size: number;
  /**
   * A waiter whose batch is not durable after this many ms gets E_REGISTRY_UNAVAILABLE (the batch
   * still completes, or fails, later: like an etcd timeout, the outcome is unknown). 0 = no limit.
   */
  timeoutMs: number;
  /** Called after each durable flush with the last durable record's sequence number. */
  onDurable: (seq: number) => void;
  /** Called once when the writer fails; the store stops serving. */
  onFail: (err: FlotillaError) => void;
  /** Called after each fdatasync (tests count group commits with it). */
  onSync?: (records: number) => void;
  /** Awaited before each fdatasync (tests simulate a stalled disk with it). */
  beforeSync?: () => Promise<void> | void;
}

export class LogWriter {
  private readonly batches: Batch[] = [];
  private open: Batch = newBatch();
  private running = false;
  private failed: FlotillaError | undefined;
  private segmentNo: number;
  private handle: FileHandle;
  private bytes: number;
  readonly stats = { syncs: 0, records: 0, bytes: 0 };

  constructor(private readonly opts: LogWriterOptions) {
    this.segmentNo = opts.segment;
    this.handle = opts.handle;
    this.bytes = opts.size;
    this.batches.push(this.open);
  }

  /** Size of the current segment in bytes (what has been written durably). */
  get size(): number {
    return this.bytes;
  }

  get segment(): number {
    return this.segmentNo;
  }

  /** Queue one record; resolves when it is durable. */
  append(json: string, seq: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    this.open.records.push(json);
    this.open.lastSeq = seq;
    this.kick();
    return this.waitFor(this.open);
  }

  /** Resolves when every record appended so far is durable. */
  flushed(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    for (let i = this.batches.length - 1; i >= 0; i--) {
      const b = this.batches[i]!;
      if (b.records.length || b.rotateAfter) return this.waitFor(b);
    }
    return Promise.resolve();
  }

  private waitFor(b: Batch): Promise<void> {
    const ms = this.opts.timeoutMs;
    if (!(ms > 0 && ms < Infinity)) return b.promise;
    b.bounded ??= new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        b.bounded = undefined; // later waiters get their own full timeout
        const dir = this.opts.dir;
        reject(
          new FlotillaError(
            'E_REGISTRY_UNAVAILABLE',
            `registry log in ${dir} not durable after ${ms} ms (disk stalled?)`,
            {
              dataDir: dir,
              timeoutMs: ms,
            },
          ),
        );
      }, ms);
      void b.promise.then(resolve, reject).finally(() => clearTimeout(timer));
    });
    const bounded = b.bounded;
    bounded.catch(() => undefined);
    return bounded;
  }

  /** End the segment after the records queued so far; resolves with the new segment's number. */
  async rotate(): Promise<number> {
    if (this.failed) throw this.failed;
    const batch = this.open;
    batch.rotateAfter = true;
    this.open = newBatch();
    this.batches.push(this.open);
    this.kick();
    await batch.promise;
    return this.segmentNo;
  }

  private kick(): void {
    if (this.running || this.failed) return;
    this.running = true;
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    for (;;) {
      const batch = this.batches[0]!;
      if (batch === this.open) {
        if (batch.records.length === 0) break;
        this.open = newBatch(); // seal it: later appends go to the next batch
        this.batches.push(this.open);
      }
      // The batch stays first in `batches` until it is done, so `flushed()` waits for it.
      try {
        if (batch.records.length) await this.flush(batch);
        if (batch.rotateAfter) await this.nextSegment();
      } catch (err) {
        this.fail(err);
        return;
      }
      this.batches.shift();
      batch.resolve();
      await new Promise<void>((r) => setImmediate(r));
      if (this.failed) return;
    }
    this.running = false;
  }

  private async flush(batch: Batch): Promise<void> {
    const frame = encodeFrame(batch.records);
    let off = 0;
    while (off < frame.length) {
      off += (await this.handle.write(frame, off, frame.length - off, this.bytes + off)).bytesWritten;
    }
    await this.opts.beforeSync?.();
    await this.handle.datasync();
    this.bytes += frame.length;
    this.stats.syncs++;
    this.stats.records += batch.records.length;
    this.stats.bytes += frame.length;
    this.opts.onSync?.(batch.records.length);
    this.opts.onDurable(batch.lastSeq);
  }

  private async nextSegment(): Promise<void> {
    const n = this.segmentNo + 1;
    const fh = await open(join(this.opts.dir, segmentName(n)), 'wx', 0o600);
    try {
      await fh.write(SEGMENT_MAGIC, 0, SEGMENT_MAGIC.length, 0);
      await fh.sync();
      await syncDir(this.opts.dir);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    await this.handle.close();
    this.handle = fh;
    this.segmentNo = n;
    this.bytes = SEGMENT_MAGIC.length;
  }

  private fail(err: unknown): void {
    if (this.failed) return;
    this.failed =
      err instanceof FlotillaError
        ? err
        : new FlotillaError(
            'E_REGISTRY_UNAVAILABLE',
            `registry log write failed: ${String(err)}`,
            {},
            { cause: err },
          );
    for (const b of this.batches) b.reject(this.failed);
    this.batches.length = 0;
    this.opts.onFail(this.failed);
  }

  /** Wait for everything queued, then close the segment. */
  async close(): Promise<void> {
    await this.flushed().catch(() => undefined);
    await this.handle.close().catch(() => undefined);
  }
}
