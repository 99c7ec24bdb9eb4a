/**
 * flotilla's runtime units directory (default `/run/flotilla/units`): the files we install, and so the
 * record of which units are ours.
 *
 * CONTRACT
 * - `unitsDir` is the directory as systemd sees it (it goes into LinkUnitFiles). `fsRoot` is prepended
 *   for our own file operations, so an agent can manage a machine whose root it sees elsewhere (tests
 *   use `/proc/<machine pid 1>/root`). Default "" (same file system).
 * - Names must be validated by the caller (`validateUnitName`) before they reach this module; we check
 *   again that a name is a single path component, as a second fence.
 * - `write` is atomic: temp file in the same directory (O_EXCL, 0644), write, fsync, rename over the
 *   target, fsync the directory. Readers see the old file or the new one, never a mix.
 * - `owns(name)`: the unit's own file, or for an instance `a@b.service` its template `a@.service`, is
 *   in the directory.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno } from '../lib/errors.js';
import { templateOf } from './unit-deps.js';
import { HOST_PATHS } from '../lib/paths.js';

export const DEFAULT_UNITS_DIR: string = HOST_PATHS.unitsDir;

export class UnitFileStore {
  readonly unitsDir: string;
  private readonly localDir: string;

  constructor(unitsDir: string = DEFAULT_UNITS_DIR, fsRoot = '') {
    if (!unitsDir.startsWith('/')) throw new Error(`unitsDir must be absolute: ${unitsDir}`);
    this.unitsDir = unitsDir.replace(/\/+$/, '') || '/';
    this.localDir = fsRoot ? join(fsRoot, this.unitsDir) : this.unitsDir;
  }

  /** The unit file's path as systemd sees it. */
  pathFor(name: string): string {
    return join(this.unitsDir, component(name));
  }

  /** True when `path` (e.g. a FragmentPath) is inside our directory. */
  contains(path: string): boolean {
    return path.startsWith(`${this.unitsDir}/`) && !path.slice(this.unitsDir.length + 1).includes('/');
  }

  async read(name: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.localDir, component(name)), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async has(name: string): Promise<boolean> {
    try {
      return (await stat(join(this.localDir, component(name)))).isFile();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async owns(name: string): Promise<boolean> {
    if (await this.has(name)) return true;
    const t = templateOf(name);
    return t !== undefined && (await this.has(t));
  }

  /** Atomic replace. Returns whether the contents changed. */
  async write(name: string, contents: string): Promise<{ changed: boolean; path: string }> {
    const file = component(name);
    const before = await this.read(name);
    await mkdir(this.localDir, { recursive: true, mode: 0o755 });
    const tmp = join(this.localDir, `.${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(contents, 'utf8');
      await fh.sync();
    } catch (err) {
      await fh.close();
      await rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    try {
      await chmod(tmp, 0o644); // the umask may have narrowed it
      await rename(tmp, join(this.localDir, file));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await this.syncDir();
    return { changed: before !== contents, path: this.pathFor(name) };
  }

  /** Removes the file; false when it was not there. */
  async remove(name: string): Promise<boolean> {
    try {
      await rm(join(this.localDir, component(name)));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
    await this.syncDir();
    return true;
  }

  /** Unit names in the directory (temp files excluded). */
  async list(): Promise<string[]> {
    try {
      return (await readdir(this.localDir)).filter((f) => !f.startsWith('.')).sort();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
  }

  private async syncDir(): Promise<void> {
    const dh = await open(this.localDir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}

function component(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw new Error(`not a single path component: ${JSON.stringify(name)}`);
  return name;
}
