/**
 * Snapshot files: the whole state at one log position, written atomically.
 *
 *   file = 'FLKVSNP1' | length u32be | crc32 u32be (of the body) | body
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
import type { KeyValue } from '../kv.js';
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

/** What a snapshot is written from: `KvState.capture()`, taken synchronously, cheap (no copying of values). */
export interface SnapshotSource {
  seq: number;
  revision: number;
  leases: [string, number][];
  entries: readonly Readonly<KeyValue>[];
}

const CHUNK = 2000;

/**
 * Write snapshot n durably (temp file, fsync, rename, fsync dir). Returns its size in bytes. The body
 * is serialized and written a chunk of keys at a time, yielding to the event loop in between, so a
 * large state does not stall requests while it is saved.
 */
export async function writeSnapshot(dir: string, n: number, src: SnapshotSource): Promise<number> {
  const final = join(dir, snapshotName(n));
  const tmp = `${final}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    let off = HEADER;
    let crc = 0;
    const put = async (text: string): Promise<void> => {
      const buf = Buffer.from(text, 'utf8');
      crc = crc32(buf, crc);
      for (let done = 0; done < buf.length;) {
        done += (await fh.write(buf, done, buf.length - done, off + done)).bytesWritten;
      }
      off += buf.length;
    };
    await put(
      `{"v":1,"seq":${src.seq},"revision":${src.revision},"leases":${JSON.stringify(src.leases)},"kvs":[`,
    );
    for (let i = 0; i < src.entries.length; i += CHUNK) {
      const rows = src.entries
        .slice(i, i + CHUNK)
        .map((kv) => [kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease]);
      await put((i ? ',' : '') + JSON.stringify(rows).slice(1, -1));
      await new Promise((r) => setImmediate(r));
    }
    await put(']}');
    const header = Buffer.allocUnsafe(HEADER);
    MAGIC.copy(header, 0);
    header.writeUInt32BE(off - HEADER, MAGIC.length);
    header.writeUInt32BE(crc, MAGIC.length + 4);
    await fh.write(header, 0, HEADER, 0);
    await fh.sync();
    await fh.close();
    await rename(tmp, final);
    await syncDir(dir);
    return off;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
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
  const crc = crc32(buf.subarray(HEADER));
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
