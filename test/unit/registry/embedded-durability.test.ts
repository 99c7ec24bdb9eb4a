import { appendFile, readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isCode } from '../../../src/lib/errors.js';
import { SEGMENT_HEADER, validFrameAt } from '../../../src/registry/embedded/frame.js';
import type { EmbeddedKvStore } from '../../../src/registry/embedded/index.js';
import { PidFileLock } from '../../../src/registry/embedded/lock.js';
import { op } from '../../../src/registry/kv.js';
import { tempStores } from './embedded-support.js';

const t = tempStores();
afterEach(() => t.cleanup());

const seg = (n: number) => `wal-${n.toString(16).padStart(16, '0')}.log`;

/** Start offsets of the valid frames of a segment. */
async function frames(file: string): Promise<number[]> {
  const buf = await readFile(file);
  const out: number[] = [];
  for (let off = SEGMENT_HEADER; off < buf.length;) {
    const end = validFrameAt(buf, off);
    if (end < 0) break;
    out.push(off);
    off = end;
  }
  return out;
}

/** Everything observable about a store's data, to compare before and after a reopen. */
async function dump(s: EmbeddedKvStore) {
  return { revision: await s.revision(), kvs: (await s.range('')).kvs };
}

async function openError(dir: string): Promise<unknown> {
  return t.open(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function fill(s: EmbeddedKvStore, n: number, prefix = 'k') {
  for (let i = 0; i < n; i++) await s.put(`${prefix}/${i}`, `value ${i}`);
}

describe('embedded KvStore: persistence', () => {
  it('keeps keys, revisions, versions and leases across close and reopen', async () => {
    const dir = await t.dir();
    const s1 = await t.open(dir);
    await fill(s1, 20);
    await s1.put('k/3', 'again');
    await s1.delete('k/4');
    await s1.txn({ compare: [], success: [op.put('t/1', 'x'), op.del('k/1'), op.put('t/2', 'y')] });
    const l = await s1.grantLease(100);
    await s1.put('leased', 'v', { lease: l.id });
    const before = await dump(s1);
    await s1.close();
    expect((await stat(dir)).mode & 0o777).toBe(0o700);

    const s2 = await t.open(dir);
    expect(await dump(s2)).toEqual(before);
    expect(await s2.get('k/3')).toMatchObject({ createRevision: 4, modRevision: 21, version: 2 });
    expect(await s2.leaseTimeToLive(l.id)).toBe(100);
    // And it goes on from where it was.
    expect(await s2.put('next', '1')).toEqual({ revision: before.revision + 1 });
  });

  it('compacts into a snapshot, deletes the old segments, and reopens to the same state', async () => {
    const dir = await t.dir();
    const phases: string[] = [];
    const s1 = await t.open(dir, { compactBytes: 4096, hooks: { onCompaction: (p) => phases.push(p) } });
    const l = await s1.grantLease(100);
    await s1.put('leased', 'v', { lease: l.id });
    await fill(s1, 300);
    await s1.delete('k/7');
    expect(s1.stats.compactions).toBeGreaterThan(2);
    expect(phases).not.toContain('failed');
    const before = await dump(s1);
    await s1.close();
    const files = await readdir(dir);
    expect(files.filter((f) => f.startsWith('snap-'))).toHaveLength(1);
    expect(files.filter((f) => f.startsWith('wal-'))).toHaveLength(1);

    const s2 = await t.open(dir);
    expect(await dump(s2)).toEqual(before);
    expect(await s2.get('leased')).toMatchObject({ lease: l.id });
    await s2.revokeLease(l.id);
    expect(await s2.get('leased')).toBeUndefined();
  });

  it('finishes an interrupted compaction on open (stale segments, snapshots and temp files)', async () => {
    const dir = await t.dir();
    const s1 = await t.open(dir, { compactBytes: 2048 });
    await fill(s1, 100);
    const before = await dump(s1);
    await s1.close();
    // What a crash right after the rename would leave: an older segment, an older snapshot, a .tmp.
    await writeFile(join(dir, seg(1)), 'stale');
    await writeFile(join(dir, 'snap-0000000000000001.snap'), 'stale');
    await writeFile(join(dir, 'snap-00000000000000ff.snap.tmp'), 'half');
    const s2 = await t.open(dir);
    expect(await dump(s2)).toEqual(before);
    const files = await readdir(dir);
    expect(files.filter((f) => f.startsWith('snap-'))).toHaveLength(1);
    expect(files).not.toContain(seg(1));
  });
});

describe('embedded KvStore: recovery', () => {
  it('drops a torn last record (cut short, garbage after it) and keeps the rest', async () => {
    const dir = await t.dir();
    const s1 = await t.open(dir);
    await fill(s1, 10);
    await s1.close();
    const file = join(dir, seg(1));
    const size = (await stat(file)).size;
    await truncate(file, size - 3);
    await appendFile(file, Buffer.from('garbage after a torn write \x00\x01\x02'));

    const torn = (await stat(file)).size;
    const warnings: { obj: object; msg: string }[] = [];
    const s2 = await t.open(dir, { log: { warn: (obj, msg) => warnings.push({ obj, msg }) } });
    // The cut is logged with its byte count: what was torn plus the garbage after it.
    const cut = torn - (await stat(file)).size;
    expect(cut).toBeGreaterThan(0);
    expect(s2.recovery.truncatedBytes).toBe(cut);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.obj).toMatchObject({ dataDir: dir, segment: 1, bytes: cut });
    expect(warnings[0]!.msg).toContain(`torn tail of ${cut} bytes`);
    expect(await s2.revision()).toBe(9);
    expect(await s2.get('k/8')).toMatchObject({ value: 'value 8', modRevision: 9 });
    expect(await s2.get('k/9')).toBeUndefined();
    const offsets = await frames(file);
    expect((await stat(file)).size).toBeLessThan(size); // truncated
    // Appending continues cleanly after the cut, and the result reopens.
    expect(await s2.put('k/9', 'redo')).toEqual({ revision: 10 });
    await s2.close();
    expect(await frames(file)).toHaveLength(offsets.length + 1);
    const s3 = await t.open(dir);
    expect(await s3.get('k/9')).toMatchObject({ value: 'redo', modRevision: 10 });
  });

  it('treats a zero-filled tail (power loss after a size update) as torn', async () => {
    const dir = await t.dir();
    const s1 = await t.open(dir);
    await fill(s1, 5);
    await s1.close();
    await appendFile(join(dir, seg(1)), Buffer.alloc(4096));
    const s2 = await t.open(dir);
    expect(await s2.revision()).toBe(5);
  });

  it('reports a damaged record followed by valid ones as E_REGISTRY_CORRUPT with file and offset', async () => {
    const dir = await t.dir();
    const s1 = await t.open(dir);
    await fill(s1, 10);
    await s1.close();
    const file = join(dir, seg(1));
    const offsets = await frames(file);
    const victim = offsets[4]!;
    const buf = await readFile(file);
    buf[victim + 20]! ^= 0xff; // a byte inside the 5th frame's payload
    await writeFile(file, buf);

    const err = await openError(dir);
    expect(isCode(err, 'E_REGISTRY_CORRUPT')).toBe(true);
    expect((err as { details: unknown }).details).toMatchObject({ file, offset: victim });
    expect((err as Error).message).toContain(file);
    // Nothing was "repaired": the file is untouched and the directory not left locked.
    expect(await readFile(file)).toEqual(buf);
    expect(isCode(await openError(dir), 'E_REGISTRY_CORRUPT')).toBe(true);
  });

  it('reports a damaged snapshot, and a missing segment, as E_REGISTRY_CORRUPT', async () => {
    const dir = await t.dir();
    const s1 = await t.open(dir, { compactBytes: 1024 });
    await fill(s1, 50);
    await s1.close();
    const files = await readdir(dir);
    const snap = join(
      dir,
      files.find((f) => f.startsWith('snap-'))!,
    );
    const good = await readFile(snap);
    const bad = Buffer.from(good);
    bad[bad.length - 5]! ^= 0x01;
    await writeFile(snap, bad);
    expect(isCode(await openError(dir), 'E_REGISTRY_CORRUPT')).toBe(true);
    await writeFile(snap, good);

    const wal = files.find((f) => f.startsWith('wal-'))!;
    const n = parseInt(wal.slice(4, 20), 16);
    await writeFile(join(dir, seg(n + 2)), Buffer.alloc(0)); // a gap: n+1 missing
    const err = await openError(dir);
    expect(isCode(err, 'E_REGISTRY_CORRUPT')).toBe(true);
    expect((err as Error).message).toContain(seg(n + 1));
  });

  it('accepts a last segment whose creation was cut short (no header yet)', async () => {
    const dir = await t.dir();
    const s1 = await t.open(dir);
    await fill(s1, 3);
    await s1.close();
    await writeFile(join(dir, seg(2)), Buffer.from('FLKV'));
    const s2 = await t.open(dir);
    expect(await s2.put('after', '1')).toEqual({ revision: 4 });
    await s2.close();
    expect(await frames(join(dir, seg(2)))).toHaveLength(1);
    const s3 = await t.open(dir);
    expect(await s3.revision()).toBe(4);
  });

  it('opens a directory whose LOCK names a process that died', async () => {
    const dir = await t.dir();
    await (await t.open(dir)).close();
    await writeFile(join(dir, 'LOCK'), '999999999 12345\n'); // no such PID
    const s = await t.open(dir);
    expect(await s.revision()).toBe(0);
  });

  it('falls back to a PID file lock: refuses a live holder, takes over a dead one', async () => {
    const dir = await t.dir();
    const a = await PidFileLock.acquire(dir);
    const err = await PidFileLock.acquire(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCode(err, 'E_REGISTRY_UNAVAILABLE')).toBe(true);
    expect((err as { details: unknown }).details).toMatchObject({ dataDir: dir, pid: process.pid });
    await a.release();
    await writeFile(join(dir, 'LOCK'), '999999999 12345\n');
    const b = await PidFileLock.acquire(dir);
    expect(await readFile(join(dir, 'LOCK'), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
    await b.release();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('embedded KvStore: group commit', () => {
  it('batches concurrent writers into few fdatasyncs, each resolved only after its sync', async () => {
    const dir = await t.dir();
    const syncs: number[] = [];
    const s = await t.open(dir, { hooks: { onSync: (records) => syncs.push(records) } });
    await s.put('warm', 'up');
    syncs.length = 0;
    let durable = 0;
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const r = await s.put(`c/${i}`, String(i));
        // The record's sync happened before its promise resolved.
        expect(syncs.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(++durable);
        return r.revision;
      }),
    );
    expect(new Set(results).size).toBe(64);
    expect(syncs.reduce((a, b) => a + b, 0)).toBe(64);
    expect(syncs.length).toBeLessThanOrEqual(2);
    // Mixed concurrent txns, leases and reads also share syncs.
    syncs.length = 0;
    await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        i % 2
          ? s.txn({ compare: [], success: [op.put(`d/${i}`, 'x'), op.put(`e/${i}`, 'y')] })
          : s.grantLease(10),
      ),
    );
    expect(syncs.length).toBeLessThanOrEqual(2);
  });
});

describe('embedded KvStore: a stalled disk', () => {
  it('fails requests after requestTimeoutMs with E_REGISTRY_UNAVAILABLE, and recovers when the disk does', async () => {
    const dir = await t.dir();
    let stall: Promise<void> | undefined;
    let release = (): void => undefined;
    const s = await t.open(dir, { requestTimeoutMs: 100, hooks: { beforeSync: () => stall } });
    await s.put('before', '1');
    stall = new Promise<void>((r) => (release = r));
    const put = s.put('during', '1');
    const read = s.get('during'); // reads what the stalled write wrote: must wait for it too
    for (const p of [put, read]) {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isCode(err, 'E_REGISTRY_UNAVAILABLE')).toBe(true);
      expect((err as Error).message).toContain(dir);
    }
    stall = undefined;
    release();
    // Like an etcd timeout, the outcome was unknown: here the write landed once the disk came back.
    expect(await s.get('during')).toMatchObject({ value: '1', modRevision: 2 });
    expect(await s.put('after', '1')).toEqual({ revision: 3 });
  });

  it('answers a read of a change whose sync is in flight only once that sync is done', async () => {
    const dir = await t.dir();
    let stalled = (): void => undefined;
    const atSync = new Promise<void>((r) => (stalled = r));
    let release = (): void => undefined;
    const stall = new Promise<void>((r) => (release = r));
    let first = true;
    const s = await t.open(dir, {
      hooks: {
        beforeSync: () => {
          if (!first) return;
          first = false;
          stalled();
          return stall;
        },
      },
    });
    const events: string[] = [];
    const put = s.put('k', 'v').then(() => events.push('put'));
    await atSync; // the put's batch is written and its fdatasync is pending
    const get = s.get('k').then((kv) => events.push(`get ${kv?.value}`));
    const rev = s.revision().then((r) => events.push(`revision ${r}`));
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual([]);
    release();
    await Promise.all([put, get, rev]);
    expect(events).toEqual(['put', 'get v', 'revision 1']);
    await s.close();
  });

  it('close() waits for a sync in flight', async () => {
    const dir = await t.dir();
    let stalled = (): void => undefined;
    const atSync = new Promise<void>((r) => (stalled = r));
    const s = await t.open(dir, {
      hooks: {
        beforeSync: () => {
          stalled();
          return new Promise((r) => setTimeout(r, 50));
        },
      },
    });
    const put = s.put('k', 'v');
    await atSync;
    await s.close();
    expect(await put).toEqual({ revision: 1 });
    const s2 = await t.open(dir);
    expect(await s2.get('k')).toMatchObject({ value: 'v' });
  });
});
