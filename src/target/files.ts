/**
 * Files, directories and links in the target root.
 *
 * Every write is atomic and durable: a temporary file in the same directory (O_EXCL|O_NOFOLLOW),
 * fchown + fchmod (so the umask never changes a mode), fsync, rename(2) over the path, fsync of the
 * directory. Missing parent directories are created 0755 root:root. An unchanged file (same bytes,
 * mode, owner) is not touched at all, so its mtime stays; only a differing mode or owner is fixed in
 * place. Every path goes through `resolveInRoot` again at apply time (defence in depth).
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fsyncSync,
  lchownSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { syncDir } from '../lib/fs.js';
import { parentsOf, resolveInRoot, targetError, type Resolved } from './paths.js';
import type { DirectoryAction, FileAction, LinkAction } from './types.js';

export interface Ids {
  uid: number;
  gid: number;
}

function tmpName(path: string): string {
  return join(dirname(path), `.${basename(path)}.flotilla-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Writes `data` to `path` atomically with exactly `mode` and `ids` (see module comment). */
export function writeFileAtomic(path: string, data: Uint8Array, mode: number, ids: Ids): void {
  const tmp = tmpName(path);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  let ok = false;
  try {
    for (let off = 0; off < data.length;) off += writeSync(fd, data, off, data.length - off);
    fchownSync(fd, ids.uid, ids.gid);
    fchmodSync(fd, mode);
    fsyncSync(fd);
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) rmSync(tmp, { force: true });
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  syncDir(dirname(path));
}

/** Replaces whatever is at `path` with a symlink to `target`, atomically. */
export function symlinkAtomic(path: string, target: string, ids?: Ids): void {
  const tmp = tmpName(path);
  symlinkSync(target, tmp);
  try {
    if (ids) lchownSync(tmp, ids.uid, ids.gid);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  syncDir(dirname(path));
}

function sameMeta(st: Stats, mode: number, ids: Ids): boolean {
  return (st.mode & 0o7777) === mode && st.uid === ids.uid && st.gid === ids.gid;
}

/**
 * Creates the missing parents of `targetPath` inside root (0755 root:root), each one resolved again.
 * Returns the target paths created.
 */
export function ensureParents(root: string, targetPath: string, reason: string, field: string): string[] {
  const created: string[] = [];
  for (const p of parentsOf(targetPath)) {
    const r = resolveInRoot(root, p, reason, field, { followFinal: true });
    if (r.stat === undefined) {
      mkdirSync(r.hostPath, { mode: 0o755 });
      chownSync(r.hostPath, 0, 0);
      chmodSync(r.hostPath, 0o755);
      syncDir(dirname(r.hostPath));
      created.push(r.targetPath);
    } else if (!statSync(r.hostPath).isDirectory()) {
      throw targetError(reason, field, `${r.targetPath} exists and is not a directory`);
    }
  }
  return created;
}

/** The bytes a file action wants at its path, given what is there (append semantics). */
function wantedBytes(a: FileAction, r: Resolved): { bytes: Buffer; same: boolean } {
  const existing = r.stat?.isFile() ? readFileSync(r.hostPath) : undefined;
  // Planners may hand over any Uint8Array; compare and write it as a Buffer view (no copy).
  const c = Buffer.isBuffer(a.contents)
    ? a.contents
    : Buffer.from(
        (a.contents as Uint8Array).buffer,
        (a.contents as Uint8Array).byteOffset,
        (a.contents as Uint8Array).byteLength,
      );
  if (!a.append) return { bytes: c, same: existing !== undefined && existing.equals(c) };
  // Append converges: contents already at the end of the file count as appended.
  if (existing === undefined) return { bytes: c, same: false };
  const tail = existing.subarray(Math.max(0, existing.length - c.length));
  if (c.length > 0 && tail.equals(c)) return { bytes: existing, same: true };
  return { bytes: Buffer.concat([existing, c]), same: c.length === 0 };
}

/** Applies a file action; true when the target changed. */
export function applyFile(root: string, a: FileAction, ids: Ids, reason: string): boolean {
  let r = resolveInRoot(root, a.path, reason, 'path', { followFinal: a.append === true });
  if (r.stat !== undefined && a.onlyIfAbsent) return false;
  if (r.stat?.isDirectory()) throw targetError(reason, 'path', `${a.path} is a directory`);
  const created = ensureParents(root, r.targetPath, reason, 'path');
  if (created.length > 0) r = resolveInRoot(root, a.path, reason, 'path', { followFinal: a.append === true });
  const want = wantedBytes(a, r);
  if (r.stat?.isFile() && want.same) {
    if (sameMeta(r.stat, a.mode, ids)) return created.length > 0;
    chownSync(r.hostPath, ids.uid, ids.gid);
    chmodSync(r.hostPath, a.mode);
    return true;
  }
  writeFileAtomic(r.hostPath, want.bytes, a.mode, ids);
  return true;
}

/** Applies a directory action; true when the target changed. */
export function applyDirectory(root: string, a: DirectoryAction, ids: Ids, reason: string): boolean {
  const r = resolveInRoot(root, a.path, reason, 'path');
  if (r.stat !== undefined && !r.stat.isDirectory()) {
    throw targetError(reason, 'path', `${a.path} exists and is not a directory`);
  }
  const created = ensureParents(root, r.targetPath, reason, 'path');
  if (r.stat === undefined) {
    mkdirSync(r.hostPath, { mode: 0o700 });
    chownSync(r.hostPath, ids.uid, ids.gid);
    chmodSync(r.hostPath, a.mode);
    syncDir(dirname(r.hostPath));
    return true;
  }
  if (sameMeta(r.stat, a.mode, ids)) return created.length > 0;
  chownSync(r.hostPath, ids.uid, ids.gid);
  chmodSync(r.hostPath, a.mode);
  return true;
}

/** Applies a link action (symbolic or hard); true when the target changed. */
export function applyLink(root: string, a: LinkAction, ids: Ids, reason: string): boolean {
  const r = resolveInRoot(root, a.path, reason, 'path');
  if (r.stat?.isDirectory()) throw targetError(reason, 'path', `${a.path} is a directory`);
  if (a.hard) {
    const t = resolveInRoot(root, a.target, reason, 'target', { followFinal: true });
    if (t.stat === undefined) throw targetError(reason, 'target', `${a.target} does not exist`);
    if (t.stat.isDirectory()) throw targetError(reason, 'target', `${a.target} is a directory`);
    if (r.stat && r.stat.ino === t.stat.ino && r.stat.dev === t.stat.dev) return false;
    ensureParents(root, r.targetPath, reason, 'path');
    const tmp = tmpName(r.hostPath);
    linkSync(t.hostPath, tmp);
    try {
      renameSync(tmp, r.hostPath);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    syncDir(dirname(r.hostPath));
    return true;
  }
  if (r.stat?.isSymbolicLink() && readlinkSync(r.hostPath) === a.target) {
    if (r.stat.uid === ids.uid && r.stat.gid === ids.gid) return false;
    lchownSync(r.hostPath, ids.uid, ids.gid);
    return true;
  }
  ensureParents(root, r.targetPath, reason, 'path');
  symlinkAtomic(r.hostPath, a.target, ids);
  return true;
}
