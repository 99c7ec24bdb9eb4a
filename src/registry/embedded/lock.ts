/**
 * The data directory lock, so two processes never open the same store.
 *
 * Primary: flock(2) on `LOCK`, held through an open file descriptor for as long as the store is open.
 * Node has no flock(), so `flock -n -x 3` (util-linux) is run once on a duplicate of our descriptor:
 * the lock belongs to the open file description we share with it, and stays ours after it exits. The
 * kernel drops it when we close the descriptor or die (kill -9 included), so there are no stale locks,
 * and it works across PID namespaces (two containers sharing the directory). The holder writes its PID
 * into the file for the error message of the next contender.
 *
 * Fallback, where the flock binary is missing or the filesystem refuses locks: `LOCK` created
 * atomically with link(2) and naming "<pid> <start time>"; a holder that is no longer alive (PID gone,
 * or reused: its start time differs) is stale and taken over.
 */
import { spawn } from 'node:child_process';
import { constants, readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { link, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError, isErrno } from '../../lib/errors.js';

export const LOCK_NAME = 'LOCK';
const BUSY = 75;

/** The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), if readable. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

const identity = (): string => `${process.pid} ${startTime(process.pid) ?? '-'}\n`;

function parse(content: string): { pid: number; start: string | undefined } | undefined {
  const m = /^(\d+)(?: (\S+))?\n?$/.exec(content);
  return m ? { pid: Number(m[1]), start: m[2] === '-' ? undefined : m[2] } : undefined;
}

function inUse(dir: string, pid: number | undefined): FlotillaError {
  const who =
    pid === undefined ? 'another process' : `process ${pid}${pid === process.pid ? ' (this process)' : ''}`;
  return new FlotillaError(
    'E_REGISTRY_UNAVAILABLE',
    `registry data directory ${dir} is in use by ${who} (lock file ${join(dir, LOCK_NAME)})`,
    { dataDir: dir, pid, lockFile: join(dir, LOCK_NAME) },
  );
}

function flock(fd: number): Promise<'locked' | 'busy' | 'unsupported'> {
  return new Promise((resolve) => {
    const child = spawn('flock', ['-n', '-x', '-E', String(BUSY), '3'], {
      stdio: ['ignore', 'ignore', 'ignore', fd],
    });
    child.once('error', () => resolve('unsupported'));
    child.once('exit', (code) => resolve(code === 0 ? 'locked' : code === BUSY ? 'busy' : 'unsupported'));
  });
}

export interface DirLock {
  release(): Promise<void>;
}

export async function lockDir(dir: string): Promise<DirLock> {
  const path = join(dir, LOCK_NAME);
  const fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  let state: Awaited<ReturnType<typeof flock>>;
  try {
    state = await flock(fh.fd);
    if (state === 'locked') {
      const me = Buffer.from(identity());
      await fh.truncate(0);
      await fh.write(me, 0, me.length, 0);
      return new FlockLock(fh);
    }
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
  await fh.close();
  if (state === 'busy') {
    const held = await readFile(path, 'utf8').catch(() => '');
    throw inUse(dir, parse(held)?.pid);
  }
  return PidFileLock.acquire(dir);
}

class FlockLock implements DirLock {
  constructor(private readonly fh: FileHandle) {}

  async release(): Promise<void> {
    await this.fh.truncate(0).catch(() => undefined);
    await this.fh.close().catch(() => undefined);
  }
}

function alive(pid: number, start: string | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (!isErrno(err, 'EPERM')) return false;
  }
  const now = startTime(pid);
  return start === undefined || now === undefined || now === start;
}

/** The fallback lock: a PID file created with link(2), stale when its holder is gone. */
export class PidFileLock implements DirLock {
  private constructor(
    private readonly path: string,
    private readonly identity: string,
  ) {}

  static async acquire(dir: string): Promise<PidFileLock> {
    const path = join(dir, LOCK_NAME);
    const me = identity();
    const tmp = join(dir, `${LOCK_NAME}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
    await writeFile(tmp, me, { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          await link(tmp, path);
          return new PidFileLock(path, me);
        } catch (err) {
          if (!isErrno(err, 'EEXIST')) throw err;
        }
        let held: string;
        try {
          held = await readFile(path, 'utf8');
        } catch (err) {
          if (isErrno(err, 'ENOENT')) continue;
          throw err;
        }
        const holder = parse(held);
        if (holder && alive(holder.pid, holder.start)) throw inUse(dir, holder.pid);
        await PidFileLock.removeStale(path, held);
      }
      throw new FlotillaError('E_REGISTRY_UNAVAILABLE', `could not lock registry data directory ${dir}`, {
        dataDir: dir,
        lockFile: path,
      });
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** Move the stale lock aside (one contender wins the rename), and put it back if it was not stale. */
  private static async removeStale(path: string, stale: string): Promise<void> {
    const aside = `${path}.stale.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await rename(path, aside);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    const moved = await readFile(aside, 'utf8').catch(() => stale);
    if (moved !== stale) await link(aside, path).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
  }

  async release(): Promise<void> {
    const held = await readFile(this.path, 'utf8').catch(() => undefined);
    if (held === this.identity) await unlink(this.path).catch(() => undefined);
  }
}
