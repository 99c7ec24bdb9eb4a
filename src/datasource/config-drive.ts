/**
 * `-from-configdrive ROOT` (type `cloud-drive`, host-tools.md §1.8, §1.10): OpenStack's config drive.
 *
 * - ROOT is a directory (a mounted drive, as coreos-cloudinit takes it; available while it exists,
 *   rechecked), or a block device such as `/dev/disk/by-label/config-2`, or, with `{ label }`, the
 *   device found by its file-system label (`config-2`) at boot: through udev's
 *   `/dev/disk/by-label/`, else `blkid -L`. A device is mounted read-only (nosuid, nodev, noexec) in
 *   a private temporary directory with `mount` (argv), read, and unmounted at once.
 * - User-data: `openstack/latest/user_data` (missing means empty).
 * - Metadata: `openstack/latest/meta_data.json`: `public_keys` (name → key), `hostname`,
 *   `network_config.content_path` (read relative to `openstack/`, kept for `-convert-netconf debian`).
 */
import { mkdtemp, readFile, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve, isAbsolute } from 'node:path';
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { execArgv, type Exec } from './exec.js';
import { MAX_BODY_BYTES } from './http.js';
import type { Datasource, Metadata } from './types.js';

export const CONFIG_DRIVE_LABEL = 'config-2';

export interface ConfigDriveOptions {
  log?: Logger;
  /** Runs blkid/mount/umount (default: execFile with an argv). */
  exec?: Exec;
  /** Where udev links devices by label (default /dev/disk/by-label). */
  byLabelDir?: string;
}

interface Contents {
  userData: Buffer;
  metadata: Metadata;
}

function fail(message: string, details: Record<string, unknown> = {}): never {
  throw new FlotillaError('E_DATASOURCE', `config drive: ${message}`, details);
}

async function readBounded(path: string): Promise<Buffer | undefined> {
  try {
    const st = await stat(path);
    if (st.size > MAX_BODY_BYTES) fail(`${path} is larger than ${MAX_BODY_BYTES} bytes`, { path });
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Parse meta_data.json (text) of a drive rooted at `root` into Metadata. */
export async function parseMetaData(text: string, root: string, file: string): Promise<Metadata> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    fail(`${file}: invalid JSON: ${(err as Error).message}`, { path: file });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    fail(`${file}: not a JSON object`, { path: file });
  const o = doc as Record<string, unknown>;
  const md: Metadata = { sshPublicKeys: {} };
  if (o.hostname !== undefined) {
    if (typeof o.hostname !== 'string')
      fail(`${file}: hostname: not a string`, { path: file, field: 'hostname' });
    if (o.hostname !== '') md.hostname = o.hostname;
  }
  if (o.public_keys !== undefined && o.public_keys !== null) {
    if (typeof o.public_keys !== 'object' || Array.isArray(o.public_keys)) {
      fail(`${file}: public_keys: not an object of name → key`, { path: file, field: 'public_keys' });
    }
    for (const [name, key] of Object.entries(o.public_keys as Record<string, unknown>)) {
      if (typeof key !== 'string')
        fail(`${file}: public_keys.${name}: not a string`, { path: file, field: `public_keys.${name}` });
      md.sshPublicKeys[name] = key;
    }
  }
  const nc = o.network_config as Record<string, unknown> | undefined;
  if (nc !== undefined && nc !== null && typeof nc === 'object' && nc.content_path !== undefined) {
    if (typeof nc.content_path !== 'string') {
      fail(`${file}: network_config.content_path: not a string`, {
        path: file,
        field: 'network_config.content_path',
      });
    }
    const base = join(root, 'openstack');
    const target = resolve(base, `.${nc.content_path.startsWith('/') ? '' : '/'}${nc.content_path}`);
    const rel = relative(base, target);
    if (rel.startsWith('..') || isAbsolute(rel)) {
      fail(`${file}: network_config.content_path escapes the drive`, {
        path: file,
        field: 'network_config.content_path',
      });
    }
    const content = await readBounded(target);
    if (content === undefined) {
      fail(`${file}: network_config.content_path: ${target} does not exist`, {
        path: file,
        field: 'network_config.content_path',
      });
    }
    md.networkConfig = { format: 'debian', contents: content.toString('utf8') };
  }
  return md;
}

/** Read user_data and meta_data.json from a drive mounted (or copied) at `root`. */
export async function readConfigDrive(root: string): Promise<Contents> {
  const latest = join(root, 'openstack', 'latest');
  const userData = (await readBounded(join(latest, 'user_data'))) ?? Buffer.alloc(0);
  const metaFile = join(latest, 'meta_data.json');
  const meta = await readBounded(metaFile);
  const metadata =
    meta === undefined ? { sshPublicKeys: {} } : await parseMetaData(meta.toString('utf8'), root, metaFile);
  return { userData, metadata };
}

/** The block device holding the file system labelled `label`, or undefined (boot-time finder). */
export async function findConfigDrive(
  label = CONFIG_DRIVE_LABEL,
  opts: Pick<ConfigDriveOptions, 'exec' | 'byLabelDir'> = {},
): Promise<string | undefined> {
  const link = join(opts.byLabelDir ?? '/dev/disk/by-label', label);
  try {
    if ((await stat(link)).isBlockDevice()) return link;
  } catch {
    /* no udev link: ask blkid */
  }
  const r = await (opts.exec ?? execArgv)('blkid', ['-L', label], { timeoutMs: 10_000 });
  if (r.code !== 0) return undefined;
  const dev = r.stdout.toString('utf8').trim().split('\n')[0];
  return dev === undefined || dev === '' ? undefined : dev;
}

/** Mount `device` read-only in a private temporary directory, run fn on it, unmount, remove the dir. */
export async function withMountedDrive<T>(
  device: string,
  fn: (root: string) => Promise<T>,
  opts: Pick<ConfigDriveOptions, 'exec' | 'log'> = {},
): Promise<T> {
  const exec = opts.exec ?? execArgv;
  const log = opts.log ?? nullLogger;
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-configdrive-')); // mode 0700
  try {
    const m = await exec('mount', ['-o', 'ro,nosuid,nodev,noexec', device, dir], { timeoutMs: 30_000 });
    if (m.code !== 0) {
      fail(`mount ${device} failed: ${m.error ?? m.stderr.trim() ?? `exit ${m.code}`}`, { device });
    }
    try {
      return await fn(dir);
    } finally {
      const u = await exec('umount', [dir], { timeoutMs: 30_000 });
      if (u.code !== 0) log.warn({ device, dir, error: u.stderr.trim() || u.error }, `umount ${dir} failed`);
    }
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

export class ConfigDriveDatasource implements Datasource {
  readonly type = 'cloud-drive';
  private readonly log: Logger;
  private contents: Promise<Contents> | undefined;
  private device: string | undefined;

  /** `source`: a directory or block device path, or `{ label }` to find the drive by label. */
  constructor(
    private readonly source: string | { label: string },
    private readonly opts: ConfigDriveOptions = {},
  ) {
    this.log = opts.log ?? nullLogger;
  }

  async isAvailable(): Promise<boolean> {
    if (typeof this.source !== 'string') {
      this.device = await findConfigDrive(this.source.label, this.opts);
      return this.device !== undefined;
    }
    try {
      const st = await stat(this.source);
      if (st.isBlockDevice()) this.device = this.source;
      return st.isDirectory() || st.isBlockDevice();
    } catch {
      return false;
    }
  }

  availabilityChanges(): boolean {
    return true;
  }

  configRoot(): string {
    if (typeof this.source !== 'string') return this.device ?? `LABEL=${this.source.label}`;
    return this.device ?? join(this.source, 'openstack');
  }

  private read(): Promise<Contents> {
    this.contents ??= (async () => {
      if (this.device === undefined) await this.isAvailable();
      if (this.device !== undefined) {
        this.log.info({ device: this.device }, `reading config drive ${this.device}`);
        return withMountedDrive(this.device, readConfigDrive, this.opts);
      }
      if (typeof this.source !== 'string') fail(`no file system labelled ${this.source.label}`);
      return readConfigDrive(this.source);
    })();
    return this.contents;
  }

  async fetchMetadata(): Promise<Metadata> {
    return (await this.read()).metadata;
  }

  async fetchUserdata(): Promise<Buffer> {
    return (await this.read()).userData;
  }
}
