/**
 * Snapshot files: the whole state at one log position, written atomically.
 *
 *   file = 'FLKVSNP1' | length u32be | crc32 u32be (over the length bytes and the body) | body
 *   body = UTF-8 JSON of SnapshotData
 *
 * Writing: <name>.tmp is written and fsynced, renamed over <name>, then the directory is fsynced. A
 * crash leaves either no snapshot (the .tmp is removed on open) or a complete one; a snapshot whose
 * checksum fails was damaged after it was durable, which is E_REGISTRY_CORRUPT.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { FlotillaError } from '../../lib/errors.js';
import { snapshotName, syncDir } from './files.js';

const MAGIC = Buffer.from('FLKVSNP1', 'latin1');
const HEADER = MAGIC.length + 8;

export interface SnapshotData {
  v: 1;
  /** Sequence number of the last record included. */
  seq: number;
  revision: number;
  /** [id, ttl seconds] */
  leases: [string, number][];
  /** [key, value, createRevision, modRevision, version, lease] */
  kvs: [string, string, number, number, number, string][];
}

export function encodeSnapshot(data: SnapshotData): Buffer {
  const body = JSON.stringify(data);
  const len = Buffer.byteLength(body, 'utf8');
  const buf = Buffer.allocUnsafe(HEADER + len);
  MAGIC.copy(buf, 0);
  buf.writeUInt32BE(len, MAGIC.length);
  buf.write(body, HEADER, 'utf8');
  const crc = crc32(buf.subarray(HEADER), crc32(buf.subarray(MAGIC.length, MAGIC.length + 4)));
  buf.writeUInt32BE(crc, MAGIC.length + 4);
  return buf;
}

/** Write snapshot n durably (temp file, fsync, rename, fsync dir). Returns its size in bytes. */
export async function writeSnapshot(dir: string, n: number, data: Buffer): Promise<number> {
  const final = join(dir, snapshotName(n));
  const tmp = `${final}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    let off = 0;
    while (off < data.length) off += (await fh.write(data, off, data.length - off, off)).bytesWritten;
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, final);
  await syncDir(dir);
  return data.length;
}

export async function readSnapshot(dir: string, n: number): Promise<{ data: SnapshotData; size: number }> {
  const file = join(dir, snapshotName(n));
  const buf = await readFile(file);
  const bad = (why: string): FlotillaError =>
    new FlotillaError('E_REGISTRY_CORRUPT', `registry snapshot ${file} is damaged: ${why}`, {
      file,
      offset: 0,
    });
  if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw bad('bad header');
  const len = buf.readUInt32BE(MAGIC.length);
  if (len !== buf.length - HEADER) throw bad(`length ${len} does not match the file size`);
  const crc = crc32(buf.subarray(HEADER), crc32(buf.subarray(MAGIC.length, MAGIC.length + 4)));
  if (crc !== buf.readUInt32BE(MAGIC.length + 4)) throw bad('checksum mismatch');
  let data: unknown;
  try {
    data = JSON.parse(buf.toString('utf8', HEADER));
  } catch {
    throw bad('body is not JSON');
  }
  const d = data as Partial<SnapshotData> | null;
  if (!d || d.v !== 1 || typeof d.seq !== 'number' || typeof d.revision !== 'number')
    throw bad('unknown format');
  if (!Array.isArray(d.leases) || !Array.isArray(d.kvs)) throw bad('unknown format');
  return { data: d as SnapshotData, size: buf.length };
}
