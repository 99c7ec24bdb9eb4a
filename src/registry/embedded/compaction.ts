/**
 * Compaction: bound the log by replacing everything before the current segment with a snapshot.
 *
 * Triggered after a durable flush once the current segment is larger than `thresholdBytes`, or than
 * the last snapshot if that is larger (so a big state is not rewritten for every few writes):
 *   1. capture the state (synchronous, cheap: immutable entries are shared, not copied);
 *   2. rotate the log right after the records the capture includes (nothing can run in between), and
 *      wait until they are durable and the next segment n exists;
 *   3. write snapshot n atomically (snapshot.ts): "the state after every segment < n";
 *   4. delete the segments and snapshots before n, fsync the directory.
 * A crash between any two steps leaves a directory that recover.ts opens to the same state. A failed
 * compaction leaves the log intact and is retried when the new segment grows past the limit.
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { listDataDir, segmentName, snapshotName, syncDir } from './files.js';
import type { LogWriter } from './log.js';
import { type SnapshotSource, writeSnapshot } from './snapshot.js';

export type CompactionPhase = 'start' | 'rotated' | 'snapshot' | 'done' | 'failed';

export interface CompactorOptions {
  dir: string;
  log: LogWriter;
  capture: () => SnapshotSource;
  thresholdBytes: number;
  /** Size of the snapshot the store was opened from (0 if none). */
  snapshotBytes: number;
  onPhase?: (phase: CompactionPhase, err?: unknown) => void;
}

export class Compactor {
  private running: Promise<void> | undefined;
  private snapshotBytes: number;
  private stopped = false;
  count = 0;
  /** The last compaction's failure, until one succeeds. */
  lastError: string | undefined;

  constructor(private readonly o: CompactorOptions) {
    this.snapshotBytes = o.snapshotBytes;
  }

  /** Start a compaction if the log is due for one and none is running. */
  maybe(): void {
    if (this.running || this.stopped) return;
    if (this.o.log.size < Math.max(this.o.thresholdBytes, this.snapshotBytes)) return;
    this.running = this.run().finally(() => {
      this.running = undefined;
    });
  }

  /** Start no more compactions; resolves when the running one (if any) has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    const phase = this.o.onPhase ?? ((): void => undefined);
    const dir = this.o.dir;
    phase('start');
    try {
      const src = this.o.capture();
      const n = await this.o.log.rotate();
      phase('rotated');
      this.snapshotBytes = await writeSnapshot(dir, n, src);
      phase('snapshot');
      const ls = await listDataDir(dir);
      for (const s of ls.segments) if (s < n) await unlink(join(dir, segmentName(s)));
      for (const s of ls.snapshots) if (s < n) await unlink(join(dir, snapshotName(s)));
      await syncDir(dir);
      this.count++;
      this.lastError = undefined;
      phase('done');
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      phase('failed', err);
    }
  }
}
