/**
 * Backups of the embedded registry: `flotilla registry backup FILE` / `restore FILE`.
 *
 *   file = 'FLREGBK1' | length u32be | crc32 u32be (of the body) | body
 *   body = UTF-8 JSON of BackupData (the keys with their revisions, and the leases with their TTLs)
 *
 * A backup is taken from an open store (`EmbeddedKvStore.capture()`): the state at one revision,
 * only what is durable. Writing it is atomic (temp file 0600, fsync, rename, directory fsync).
 *
 * Restoring validates the whole file first (magic, length, checksum, every row), then builds a new
 * data directory next to the old one (a snapshot of the backup plus an empty log segment), opens it
 * once as a store to prove it loads, and only then swaps it in with two renames: the old directory
 * is kept as `<dir>.pre-restore-<time>`. Restored leases get a full TTL when the agent opens the
 * store, like every lease after a restart: machines that are gone expire, live agents renew theirs.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import { FlotillaError, isCode, isErrno } from '../../lib/errors.js';
import { syncDir, segmentName } from './files.js';
import { SEGMENT_MAGIC } from './frame.js';
import { lockDir, type DirLock } from './lock.js';
import { writeSnapshot, type SnapshotSource } from './snapshot.js';
import { EmbeddedKvStore } from './store.js';

const MAGIC = Buffer.from('FLREGBK1', 'latin1');
const HEADER = MAGIC.length + 8;
const KIND = 'flotilla-registry-backup';
/** bbolt's meta page magic (etcd's snapshot file is a bbolt database), after a 16-byte page header. */
const BOLT_MAGIC = 0xed0cdaed;

export interface BackupData {
  v: 1;
  kind: typeof KIND;
  backend: 'embedded';
  /** ISO time the backup was taken. */
  created: string;
  seq: number;
  revision: number;
  /** [id, ttl seconds] */
  leases: [string, number][];
  /** [key, value, createRevision, modRevision, version, lease] */
  kvs: [string, string, number, number, number, string][];
}

export interface BackupSummary {
  file: string;
  revision: number;
  keys: number;
  leases: number;
  bytes: number;
}

function backupError(file: string, why: string, details: Record<string, unknown> = {}): FlotillaError {
  return new FlotillaError('E_BACKUP', `registry backup ${file}: ${why}`, { file, ...details });
}

/** Serialize a captured state into a backup file, atomically. */
export async function writeBackup(
  file: string,
  src: SnapshotSource,
  now = new Date(),
): Promise<BackupSummary> {
  const data: BackupData = {
    v: 1,
    kind: KIND,
    backend: 'embedded',
    created: now.toISOString(),
    seq: src.seq,
    revision: src.revision,
    leases: src.leases,
    kvs: src.entries.map((kv) => [kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease]),
  };
  const body = Buffer.from(JSON.stringify(data), 'utf8');
  const header = Buffer.allocUnsafe(HEADER);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(body.length, MAGIC.length);
  header.writeUInt32BE(crc32(body), MAGIC.length + 4);
  const path = resolve(file);
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(Buffer.concat([header, body]));
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dirname(path));
  return {
    file: path,
    revision: data.revision,
    keys: data.kvs.length,
    leases: data.leases.length,
    bytes: HEADER + body.length,
  };
}

const isCount = (n: unknown, min: number): n is number => Number.isSafeInteger(n) && (n as number) >= min;
const LEASE_ID = /^[1-9][0-9]{0,19}$/;

/** Read and fully validate a backup file; E_BACKUP naming the file and the first bad part. */
export async function readBackup(file: string): Promise<BackupData> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (err) {
    const why = isErrno(err, 'ENOENT') ? 'no such file' : (err as Error).message;
    throw backupError(file, why);
  }
  if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    const snap = buf.subarray(0, 8).toString('latin1');
    const hint =
      snap === 'FLKVSNP1' || snap === 'FLKVWAL1'
        ? ' (it is a file of a registry data directory: back up with `flotilla registry backup`)'
        : buf.length >= 20 && buf.readUInt32LE(16) === BOLT_MAGIC
          ? ' (it is an etcd snapshot: restore it with `etcdctl snapshot restore`)'
          : '';
    throw backupError(file, `not a flotilla registry backup: bad header${hint}`);
  }
  const len = buf.readUInt32BE(MAGIC.length);
  if (len !== buf.length - HEADER)
    throw backupError(
      file,
      `truncated or padded: the header says ${len} bytes of data, the file has ${buf.length - HEADER}`,
    );
  if (crc32(buf.subarray(HEADER)) !== buf.readUInt32BE(MAGIC.length + 4))
    throw backupError(file, 'checksum mismatch: the file is damaged');
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8', HEADER));
  } catch {
    throw backupError(file, 'checksum matches but the body is not JSON');
  }
  return validate(file, parsed);
}

function validate(file: string, parsed: unknown): BackupData {
  const d = parsed as Partial<BackupData> | null;
  if (typeof d !== 'object' || d === null || d.kind !== KIND)
    throw backupError(file, 'not a flotilla registry backup');
  if (d.v !== 1)
    throw backupError(file, `unsupported backup version ${String(d.v)} (this flotilla reads version 1)`);
  if (d.backend !== 'embedded')
    throw backupError(file, `backend ${String(d.backend)} is not the embedded registry`);
  if (!isCount(d.revision, 0))
    throw backupError(file, 'field revision is not a revision', { field: 'revision' });
  if (!isCount(d.seq, 0)) throw backupError(file, 'field seq is not a sequence number', { field: 'seq' });
  if (!Array.isArray(d.leases)) throw backupError(file, 'field leases is not a list', { field: 'leases' });
  if (!Array.isArray(d.kvs)) throw backupError(file, 'field kvs is not a list', { field: 'kvs' });
  const leases = new Set<string>();
  d.leases.forEach((l: unknown, i) => {
    const at = `leases[${i}]`;
    if (
      !Array.isArray(l) ||
      l.length !== 2 ||
      typeof l[0] !== 'string' ||
      !LEASE_ID.test(l[0]) ||
      !isCount(l[1], 1)
    )
      throw backupError(file, `${at} is not [id, ttl seconds]`, { field: at });
    if (leases.has(l[0])) throw backupError(file, `${at}: lease ${l[0]} appears twice`, { field: at });
    leases.add(l[0]);
  });
  const keys = new Set<string>();
  const rev = d.revision;
  d.kvs.forEach((row: unknown, i) => {
    const at = `kvs[${i}]`;
    if (!Array.isArray(row) || row.length !== 6)
      throw backupError(file, `${at} is not [key, value, create, mod, version, lease]`, { field: at });
    const [key, value, create, mod, version, lease] = row as unknown[];
    if (typeof key !== 'string' || key === '')
      throw backupError(file, `${at}: key is not a non-empty string`, { field: at });
    const bad = (why: string): FlotillaError =>
      backupError(file, `${at} (key ${key}): ${why}`, { field: at, key });
    if (typeof value !== 'string') throw bad('value is not a string');
    if (!isCount(create, 1) || !isCount(mod, 1) || mod < create || mod > rev)
      throw bad(`revisions create=${String(create)} mod=${String(mod)} do not fit revision ${rev}`);
    if (!isCount(version, 1)) throw bad(`version ${String(version)} is not a positive integer`);
    if (typeof lease !== 'string' || (lease !== '0' && !leases.has(lease)))
      throw bad(`lease ${String(lease)} is not one of the backup's leases`);
    if (keys.has(key)) throw bad('the key appears twice');
    keys.add(key);
  });
  return d as BackupData;
}

function inUseHint(err: unknown, dataDir: string, what: string): unknown {
  if (!isCode(err, 'E_REGISTRY_UNAVAILABLE')) return err;
  return new FlotillaError(
    'E_REGISTRY_UNAVAILABLE',
    `${err.message}: the agent is running on ${dataDir}; ${what}`,
    { ...err.details },
    { cause: err },
  );
}

/**
 * Back up the store in `dataDir` (the agent's `<data_dir>/registry`) to `file`. The store is opened
 * here, so the agent must not hold it (E_REGISTRY_UNAVAILABLE names the process that does).
 */
export async function backupDataDir(dataDir: string, file: string): Promise<BackupSummary> {
  try {
    await stat(join(dataDir));
  } catch {
    throw new FlotillaError('E_NOT_FOUND', `registry data directory ${dataDir} does not exist`, { dataDir });
  }
  let store: EmbeddedKvStore;
  try {
    store = await EmbeddedKvStore.open({ dataDir });
  } catch (err) {
    throw inUseHint(
      err,
      dataDir,
      'stop it first (systemctl stop flotilla), or back up through a stopped copy',
    );
  }
  try {
    return await writeBackup(file, await store.capture());
  } finally {
    await store.close();
  }
}

export interface RestoreResult extends BackupSummary {
  dataDir: string;
  /** Where the replaced data directory was moved (undefined when there was none). */
  previous?: string;
  /** The agent held the directory and `force` was given: it must be restarted now. */
  agentRunning: boolean;
}

/**
 * Restore `file` into `dataDir`. Refused while a process (the agent) holds the directory, unless
 * `force`: then the directory is swapped under it, and the agent must be restarted at once (it keeps
 * the old state in memory until then, and what it writes meanwhile goes to the moved-away copy).
 */
export async function restoreDataDir(
  dataDir: string,
  file: string,
  opts: { force?: boolean; now?: Date } = {},
): Promise<RestoreResult> {
  const data = await readBackup(file); // everything is validated before anything is written
  const dir = resolve(dataDir);
  const parent = dirname(dir);
  let exists = true;
  try {
    await stat(dir);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    exists = false;
  }
  let lock: DirLock | undefined;
  let agentRunning = false;
  if (exists) {
    try {
      lock = await lockDir(dir);
    } catch (err) {
      if (!isCode(err, 'E_REGISTRY_UNAVAILABLE') || !opts.force)
        throw inUseHint(
          err,
          dir,
          'stop it first (systemctl stop flotilla), or give --force and restart it at once',
        );
      agentRunning = true;
    }
  }
  const tmp = join(parent, `.${basename(dir)}.restore-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(parent, { recursive: true, mode: 0o700 });
    await mkdir(tmp, { mode: 0o700 });
    const entries = data.kvs.map(([key, value, createRevision, modRevision, version, lease]) => ({
      key,
      value,
      createRevision,
      modRevision,
      version,
      lease,
    }));
    await writeSnapshot(tmp, 1, { seq: data.seq, revision: data.revision, leases: data.leases, entries });
    const seg = await open(join(tmp, segmentName(1)), 'wx', 0o600);
    try {
      await seg.write(SEGMENT_MAGIC, 0, SEGMENT_MAGIC.length, 0);
      await seg.sync();
    } finally {
      await seg.close();
    }
    await syncDir(tmp);
    // Prove the new directory loads before it replaces anything.
    const check = await EmbeddedKvStore.open({ dataDir: tmp });
    const rev = await check.revision();
    await check.close();
    if (rev !== data.revision)
      throw backupError(file, `restored store is at revision ${rev}, expected ${data.revision}`);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    await lock?.release();
    throw err;
  }
  let previous: string | undefined;
  try {
    if (exists) {
      const stamp = (opts.now ?? new Date()).toISOString().replace(/[:.]/g, '-');
      previous = `${dir}.pre-restore-${stamp}`;
      await rename(dir, previous);
    }
    await rename(tmp, dir);
    await syncDir(parent);
  } finally {
    await lock?.release();
  }
  return {
    file: resolve(file),
    dataDir: dir,
    ...(previous ? { previous } : {}),
    agentRunning,
    revision: data.revision,
    keys: data.kvs.length,
    leases: data.leases.length,
    bytes: (await stat(file)).size,
  };
}
