/**
 * The data directory's files and the recovery rules for reading them.
 *
 *   wal-<n>.log    log segment n (16 hex digits): SEGMENT_MAGIC then frames (see frame.ts)
 *   snap-<n>.snap  snapshot of the state after every segment < n; replay continues at segment n
 *   *.tmp          a snapshot being written; never read, removed on open
 *   LOCK           the process holding the directory (lock.ts)
 */
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError } from '../../lib/errors.js';
import { SEGMENT_HEADER, SEGMENT_MAGIC, findValidFrameAfter, frameRecords, validFrameAt } from './frame.js';

const hex = (n: number): string => n.toString(16).padStart(16, '0');
export const segmentName = (n: number): string => `wal-${hex(n)}.log`;
export const snapshotName = (n: number): string => `snap-${hex(n)}.snap`;

export interface DirListing {
  segments: number[];
  snapshots: number[];
  temps: string[];
}

export async function listDataDir(dir: string): Promise<DirListing> {
  const out: DirListing = { segments: [], snapshots: [], temps: [] };
  for (const name of await readdir(dir)) {
    let m: RegExpExecArray | null;
    if ((m = /^wal-([0-9a-f]{16})\.log$/.exec(name))) out.segments.push(parseInt(m[1]!, 16));
    else if ((m = /^snap-([0-9a-f]{16})\.snap$/.exec(name))) out.snapshots.push(parseInt(m[1]!, 16));
    else if (name.endsWith('.tmp')) out.temps.push(name);
  }
  out.segments.sort((a, b) => a - b);
  out.snapshots.sort((a, b) => a - b);
  return out;
}

/** fsync a directory so that creates, renames and unlinks in it are durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function corrupt(file: string, offset: number, why: string): FlotillaError {
  return new FlotillaError(
    'E_REGISTRY_CORRUPT',
    `registry log ${file} is damaged at offset ${offset}: ${why}`,
    {
      file,
      offset,
    },
  );
}

export interface SegmentContents {
  /** Record JSON strings of every valid frame, in order, with the offset of the frame holding each. */
  records: { json: string; offset: number }[];
  /** Where the valid data ends: the file is truncated here when it is longer (a torn tail). */
  validEnd: number;
  size: number;
}

/**
 * Read one segment. A damaged frame with no valid frame after it is a torn tail (the last, never
 * acknowledged group commit): allowed only in the last segment, reported through `validEnd`.
 * A damaged frame followed by a valid one, or any damage in an earlier segment, is E_REGISTRY_CORRUPT.
 */
export async function readSegment(dir: string, n: number, isLast: boolean): Promise<SegmentContents> {
  const file = join(dir, segmentName(n));
  const buf = await readFile(file);
  const contents: SegmentContents = { records: [], validEnd: 0, size: buf.length };
  const headerOk = buf.length >= SEGMENT_HEADER && buf.subarray(0, SEGMENT_HEADER).equals(SEGMENT_MAGIC);
  if (!headerOk) {
    // A segment is created with its header and fsynced before its first frame is written, so only
    // the last segment can lack one (a crash during creation), and then it holds nothing else.
    const torn =
      isLast &&
      findValidFrameAfter(buf, -1) < 0 &&
      buf
        .subarray(0, Math.min(buf.length, SEGMENT_HEADER))
        .every((b, i) => b === 0 || b === SEGMENT_MAGIC[i]);
    if (torn) return contents;
    throw corrupt(file, 0, 'bad segment header');
  }
  let off = SEGMENT_HEADER;
  while (off < buf.length) {
    const end = validFrameAt(buf, off);
    if (end < 0) {
      const later = findValidFrameAfter(buf, off);
      if (later >= 0) throw corrupt(file, off, `damaged frame followed by a valid frame at offset ${later}`);
      if (!isLast) throw corrupt(file, off, 'damaged frame at the end of a segment that is not the last');
      break; // torn tail
    }
    const records = frameRecords(buf, off, end);
    if (!records) throw corrupt(file, off, 'frame checksum is valid but its records are not');
    for (const json of records) contents.records.push({ json, offset: off });
    off = end;
  }
  contents.validEnd = off;
  return contents;
}
