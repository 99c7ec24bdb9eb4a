/**
 * Durable file writes: the one `writeAtomic` (tmp file + fsync + rename + directory fsync), so a
 * crash leaves either the old file or the new one, never a torn or empty one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface WriteAtomicOptions {
  /** File mode of the new file (default 0o600: nothing is world-readable unless asked). */
  mode?: number;
  /** Create the parent directory with this mode when it is missing. */
  mkdirMode?: number;
}

/** Write `data` to `path` atomically and durably (synchronous). */
export function writeAtomic(path: string, data: string | Uint8Array, opts: WriteAtomicOptions = {}): void {
  const dir = dirname(path);
  if (opts.mkdirMode !== undefined) mkdirSync(dir, { recursive: true, mode: opts.mkdirMode });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', opts.mode ?? 0o600);
  let written = false;
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    written = true;
  } finally {
    closeSync(fd);
    if (!written) rmSync(tmp, { force: true });
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  syncDir(dir);
}

/** fsync a directory, so a rename in it survives a crash (a no-op where directories cannot be opened). */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* some filesystems refuse fsync on a directory: nothing more can be done */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
