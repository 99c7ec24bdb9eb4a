/**
 * Safe path resolution inside the target root: the one place a plan's path becomes a host path.
 *
 * `resolveInRoot` walks the path one component at a time with lstat, as the kernel would follow it
 * from the host, and refuses (E_TARGET) before anything is written:
 * - a relative path, a NUL byte, an empty path;
 * - a `..` that climbs above the root (in the path itself or in a symlink's target);
 * - a symlink whose target, as the host sees it, leaves the root (an absolute target outside
 *   ROOT, e.g. `/etc` in a `--root` tree, or a relative one that climbs out);
 * - a component that exists but is not a directory (a file where a directory is needed);
 * - more than 40 symlinks (ELOOP).
 * The final component is not followed unless asked (`followFinal`): a file write replaces a symlink
 * there with rename(2), which never follows it.
 *
 * Planned state: `overlay` lets the whole-plan check see what earlier actions of the same plan will
 * create (directories, files, symlinks) before anything exists on disk.
 */
import { lstatSync, readlinkSync, realpathSync, type Stats } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { FlotillaError, isErrno } from '../lib/errors.js';

/** Symlinks followed in one resolution before giving up (the kernel's MAXSYMLINKS). */
export const MAX_SYMLINKS = 40;

export type PlannedNode = { type: 'dir' } | { type: 'file' } | { type: 'symlink'; target: string };

/** What earlier actions of the plan will create, keyed by the root-relative path ("etc/x"). */
export type Overlay = Map<string, PlannedNode>;

export interface Resolved {
  /** The host path to operate on (ROOT joined with the resolved in-root path). */
  hostPath: string;
  /** The resolved path inside the target, absolute ("/etc/x"). */
  targetPath: string;
  /** lstat of the final component, undefined when it does not exist (yet). */
  stat: Stats | undefined;
  /** What the overlay says the final component will be, when the plan creates it. */
  planned: PlannedNode | undefined;
}

export interface ResolveOptions {
  /** Follow a symlink in the final component too (appending, hard-link targets, home dirs). */
  followFinal?: boolean;
  overlay?: Overlay;
}

/** E_TARGET naming the action's reason and the field. Messages carry paths and names only. */
export function targetError(reason: string, field: string, message: string): FlotillaError {
  return new FlotillaError('E_TARGET', `${reason}: ${field}: ${message}`, { reason, field });
}

/** The root as an absolute real path (symlinks in the root itself are the caller's choice). */
export function realRoot(root: string): string {
  if (typeof root !== 'string' || root === '' || !isAbsolute(root)) {
    throw new FlotillaError('E_TARGET', `the target root must be an absolute path: ${String(root)}`);
  }
  try {
    return realpathSync(root);
  } catch (err) {
    throw new FlotillaError('E_TARGET', `the target root ${root} cannot be used: ${(err as Error).message}`);
  }
}

/** Checks the syntax of a target path (absolute, no NUL, not empty). Throws a plain message. */
export function pathProblem(p: unknown): string | undefined {
  if (typeof p !== 'string' || p === '') return 'must be a non-empty string';
  if (p.includes('\0')) return 'must not contain a NUL byte';
  if (!p.startsWith('/')) return `must be absolute: ${JSON.stringify(p)}`;
  if (Buffer.byteLength(p) > 4095) return 'is longer than 4095 bytes';
  return undefined;
}

function splitComponents(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

function hostJoin(root: string, parts: readonly string[]): string {
  return parts.length === 0 ? root : join(root, ...parts);
}

/**
 * Resolves `path` (absolute, inside the target) against `root` (a real path, see `realRoot`).
 * Throws E_TARGET `${reason}: ${field}: …` when the path would leave the root.
 */
export function resolveInRoot(
  root: string,
  path: string,
  reason: string,
  field: string,
  opts: ResolveOptions = {},
): Resolved {
  const problem = pathProblem(path);
  if (problem !== undefined) throw targetError(reason, field, `path ${problem}`);
  const queue = splitComponents(path);
  const done: string[] = [];
  let links = 0;
  let missing = false;
  let stat: Stats | undefined;
  let planned: PlannedNode | undefined;
  while (queue.length > 0) {
    const comp = queue.shift()!;
    const final = queue.length === 0;
    if (comp === '..') {
      if (done.length === 0) throw targetError(reason, field, `${path} climbs above the root with ".."`);
      done.pop();
      stat = lstatOrUndefined(hostJoin(root, done));
      missing = stat === undefined;
      planned = opts.overlay?.get(done.join('/'));
      continue;
    }
    const rel = [...done, comp].join('/');
    const node = opts.overlay?.get(rel);
    const disk = missing ? undefined : lstatOrUndefined(hostJoin(root, [...done, comp]));
    // What the plan will put here wins over what is on disk now (a unit file replacing a mask link,
    // a symlink replacing a file); a planned directory that already exists keeps its disk entries.
    let st = disk;
    let linkTarget: string | undefined;
    if (node === undefined) {
      if (disk?.isSymbolicLink()) linkTarget = readlinkSync(hostJoin(root, [...done, comp]));
    } else if (node.type === 'symlink') {
      linkTarget = node.target;
      st = undefined;
    } else if (node.type === 'file' || !disk?.isDirectory()) {
      st = undefined;
    }
    if (linkTarget !== undefined && (!final || opts.followFinal)) {
      if (++links > MAX_SYMLINKS) throw targetError(reason, field, `${path}: too many levels of symlinks`);
      const at = `/${[...done, comp].join('/')}`;
      if (linkTarget.startsWith('/')) {
        const inside = root === '/' ? linkTarget : insideRoot(root, linkTarget);
        if (inside === undefined) {
          throw targetError(reason, field, `${at} is a symlink to ${linkTarget}, outside the root`);
        }
        done.length = 0;
        queue.unshift(...splitComponents(inside));
      } else {
        // Relative: resolved from the link's directory; `..` above the root is refused above.
        queue.unshift(...splitComponents(linkTarget));
      }
      missing = false;
      continue;
    }
    if (!final) {
      if (st !== undefined && !st.isDirectory()) {
        throw targetError(reason, field, `/${rel} exists and is not a directory`);
      }
      if (st === undefined && node !== undefined && node.type !== 'dir') {
        throw targetError(reason, field, `/${rel} is planned as a ${node.type}, not a directory`);
      }
    }
    if (st === undefined) missing = true;
    done.push(comp);
    stat = st;
    planned = node;
  }
  return { hostPath: hostJoin(root, done), targetPath: `/${done.join('/')}`, stat, planned };
}

/** The in-root path of a host path under `root`, or undefined when it is outside. */
function insideRoot(root: string, hostPath: string): string | undefined {
  const rel = relative(root, hostPath);
  if (rel === '') return '/';
  if (rel.startsWith('..') || isAbsolute(rel)) return undefined;
  return `/${rel.split(sep).join('/')}`;
}

/** The in-root parents of a target path, outermost first: "/a/b/c" → ["/a", "/a/b"]. */
export function parentsOf(targetPath: string): string[] {
  const parts = splitComponents(targetPath);
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(`/${parts.slice(0, i).join('/')}`);
  return out;
}

/** Overlay key of an in-root absolute path. */
export function overlayKey(targetPath: string): string {
  return splitComponents(targetPath).join('/');
}
