/**
 * The data directory lock: a `LOCK` file naming the holder as "<pid> <start time>\n".
 *
 * Acquire: write our identity to a private temp file and link(2) it to LOCK, which creates LOCK
 * atomically and complete, or fails with EEXIST. Then LOCK names a holder:
 *   - alive (the PID exists and, on Linux, started at the recorded time, so a reused PID after a
 *     reboot or a kill -9 does not count) → E_REGISTRY_UNAVAILABLE naming the directory and the PID;
 *   - dead → the lock is stale: rename it aside (only one contender can rename that file), check that
 *     what we moved is the stale lock we judged (else put it back), remove it and try again.
 * Release removes LOCK if it still names us. A process killed with -9 leaves a stale lock, which the
 * next open takes over.
 */
import { readFileSync } from 'node:fs';
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FlotillaError, isErrno } from '../../lib/errors.js';

export const LOCK_NAME = 'LOCK';

/** The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), if readable. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function parse(content: string): { pid: number; start: string | undefined } | undefined {
  const m = /^(\d+)(?: (\S+))?\n?$/.exec(content);
  return m ? { pid: Number(m[1]), start: m[2] } : undefined;
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

export class DirLock {
  private constructor(
    private readonly path: string,
    private readonly identity: string,
  ) {}

  static async acquire(dir: string): Promise<DirLock> {
    const path = join(dir, LOCK_NAME);
    const identity = `${process.pid} ${startTime(process.pid) ?? '-'}\n`;
    const tmp = join(dir, `${LOCK_NAME}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
    await writeFile(tmp, identity, { mode: 0o600 });
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          await link(tmp, path);
          return new DirLock(path, identity);
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
        if (holder && alive(holder.pid, holder.start === '-' ? undefined : holder.start)) {
          const self = holder.pid === process.pid ? ' (this process)' : '';
          throw new FlotillaError(
            'E_REGISTRY_UNAVAILABLE',
            `registry data directory ${dir} is in use by process ${holder.pid}${self} (lock file ${path})`,
            { dataDir: dir, pid: holder.pid, lockFile: path },
          );
        }
        await DirLock.removeStale(path, held);
      }
      throw new FlotillaError('E_REGISTRY_UNAVAILABLE', `could not lock registry data directory ${dir}`, {
        dataDir: dir,
        lockFile: path,
      });
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  private static async removeStale(path: string, stale: string): Promise<void> {
    const aside = `${path}.stale.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await rename(path, aside);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return; // someone else moved it first
      throw err;
    }
    const moved = await readFile(aside, 'utf8').catch(() => stale);
    if (moved !== stale) {
      // Between our read and the rename another process replaced the stale lock with its own live
      // one: put it back (link fails if a third process got in meanwhile; then it keeps its lock).
      await link(aside, path).catch(() => undefined);
    }
    await unlink(aside).catch(() => undefined);
  }

  async release(): Promise<void> {
    const held = await readFile(this.path, 'utf8').catch(() => undefined);
    if (held === this.identity) await unlink(this.path).catch(() => undefined);
  }
}
