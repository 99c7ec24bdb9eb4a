/**
 * Opening a data directory: load the newest snapshot, replay the log segments after it, cut a torn
 * tail, remove what an interrupted compaction left behind, and hand back the state and an open
 * handle on the last segment.
 *
 * Rules (see frame.ts and files.ts for why they are sound):
 *   - snapshot n holds everything before segment n, so replay starts at segment n, which must exist;
 *     without a snapshot the segments must start at 1. Segment numbers must have no gaps.
 *   - only the last segment may end in a torn frame; it is truncated (and the truncation fsynced).
 *   - records must continue the sequence and revisions exactly (KvState.apply checks).
 *   - segments and snapshots older than the snapshot used, and snapshot .tmp files, are deleted.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '../../lib/errors.js';
import { SEGMENT_HEADER, SEGMENT_MAGIC } from './frame.js';
import { corrupt, listDataDir, readSegment, segmentName, snapshotName, syncDir } from './files.js';
import { History } from './history.js';
import { decodeRecord } from './records.js';
import { readSnapshot } from './snapshot.js';
import { KvState } from './state.js';

export interface Recovered {
  state: KvState;
  history: History;
  segment: number;
  handle: FileHandle;
  /** Size of the last segment after recovery. */
  size: number;
  snapshotBytes: number;
  /** Bytes cut off a torn tail (0 when the log ended cleanly). */
  truncated: number;
}

export async function recover(dir: string, historyRevisions: number): Promise<Recovered> {
  const ls = await listDataDir(dir);
  for (const t of ls.temps) if (t.startsWith('snap-')) await unlink(join(dir, t)).catch(() => undefined);

  const snap = ls.snapshots[ls.snapshots.length - 1];
  let state = new KvState();
  let snapshotBytes = 0;
  if (snap !== undefined) {
    const { data, size } = await readSnapshot(dir, snap);
    state = KvState.fromSnapshot(data, `registry snapshot ${join(dir, snapshotName(snap))}`);
    snapshotBytes = size;
  }
  const first = snap ?? 1;
  const segments = ls.segments.filter((n) => n >= first);
  if (segments.length === 0 && (snap !== undefined || ls.segments.length > 0)) {
    throw new FlotillaError(
      'E_REGISTRY_CORRUPT',
      `registry ${dir}: log segment ${segmentName(first)} is missing`,
      {
        file: join(dir, segmentName(first)),
      },
    );
  }
  segments.forEach((n, i) => {
    if (n !== first + i) {
      const missing = join(dir, segmentName(first + i));
      throw new FlotillaError('E_REGISTRY_CORRUPT', `registry ${dir}: log segment ${missing} is missing`, {
        file: missing,
      });
    }
  });

  const history = new History(historyRevisions, state.revision + 1);
  let size = 0;
  let truncated = 0;
  for (const [i, n] of segments.entries()) {
    const file = join(dir, segmentName(n));
    const isLast = i === segments.length - 1;
    const contents = await readSegment(dir, n, isLast);
    for (const { json, offset } of contents.records) {
      const rec = decodeRecord(json);
      if (!rec) throw corrupt(file, offset, 'undecodable record in a valid frame');
      const events = state.apply(rec, { file, offset });
      if (events.length) history.push({ revision: state.revision, events });
    }
    if (isLast) {
      size = contents.validEnd;
      truncated = contents.size - contents.validEnd;
    }
  }

  // Open (or create) the last segment for appending, cutting a torn tail first.
  const last = segments[segments.length - 1] ?? first;
  const path = join(dir, segmentName(last));
  const fresh = segments.length === 0;
  const handle = await open(path, fresh ? 'wx' : 'r+', 0o600);
  try {
    if (size < SEGMENT_HEADER) {
      await handle.truncate(0);
      await handle.write(SEGMENT_MAGIC, 0, SEGMENT_MAGIC.length, 0);
      size = SEGMENT_HEADER;
      await handle.sync();
    } else if (truncated > 0) {
      await handle.truncate(size);
      await handle.sync();
    }
    if (fresh) await syncDir(dir);

    // Leftovers of a compaction that installed its snapshot but died before deleting the old files.
    let removed = false;
    for (const n of ls.segments) {
      if (n < first) {
        await unlink(join(dir, segmentName(n)));
        removed = true;
      }
    }
    for (const n of ls.snapshots) {
      if (n !== snap) {
        await unlink(join(dir, snapshotName(n)));
        removed = true;
      }
    }
    if (removed) await syncDir(dir);
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
  return { state, history, segment: last, handle, size, snapshotBytes, truncated };
}
