/**
 * Where Ignition finds its config, by platform (host-tools.md §2.1, §2.3). The Ignition stages call
 * `fetchIgnitionConfig`; undefined means the platform has no config (Ignition then runs with none).
 *
 * - `qemu`: fw_cfg `/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw` (the
 *   `qemu_fw_cfg` module must be loaded).
 * - `vmware`: guestinfo `ignition.config.data` + `ignition.config.data.encoding` (encoding.ts), else
 *   `ignition.config.url` fetched with retries; the OVF environment gives defaults, direct keys
 *   win.
 * - `metal`: `ignition.config.url=` on the kernel command line, fetched with retries.
 * - `file`: the file at `path`.
 */
import { readFile } from 'node:fs/promises';
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { PROC_CMDLINE, readCmdlineValue } from './cmdline.js';
import { OvfDefaultsGuestInfo, ToolGuestInfo, type GuestInfo } from './guestinfo.js';
import { MAX_BODY_BYTES, fetchWithRetry, type FetchOptions } from './http.js';
import { readGuestinfoConfig } from './vmware.js';

export type IgnitionPlatform = 'vmware' | 'qemu' | 'file' | 'metal';

export const IGNITION_PLATFORMS: readonly IgnitionPlatform[] = ['vmware', 'qemu', 'file', 'metal'];
export const QEMU_FW_CFG_CONFIG = '/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw';

export interface IgnitionFetchOptions {
  /** qemu: the fw_cfg file (default QEMU_FW_CFG_CONFIG). */
  fwCfgPath?: string;
  /** vmware: the guestinfo port (default: tools, with the OVF env as defaults). */
  guestinfo?: GuestInfo;
  /** metal: the kernel command line file (default /proc/cmdline). */
  cmdlinePath?: string;
  /** file: the config file. */
  path?: string;
  log?: Logger;
  fetch?: FetchOptions;
}

async function readOptional(path: string, what: string): Promise<Buffer | undefined> {
  try {
    const buf = await readFile(path);
    if (buf.length > MAX_BODY_BYTES) {
      throw new FlotillaError('E_DATASOURCE', `${what} ${path}: larger than ${MAX_BODY_BYTES} bytes`, {
        path,
      });
    }
    return buf;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof FlotillaError) throw err;
    throw new FlotillaError('E_DATASOURCE', `${what} ${path}: ${(err as Error).message}`, { path });
  }
}

/** The raw Ignition config of `platform`, or undefined when it provides none. */
export async function fetchIgnitionConfig(
  platform: IgnitionPlatform,
  opts: IgnitionFetchOptions = {},
): Promise<Buffer | undefined> {
  const log = opts.log ?? nullLogger;
  const fetch = { log, ...opts.fetch };
  switch (platform) {
    case 'qemu':
      return readOptional(opts.fwCfgPath ?? QEMU_FW_CFG_CONFIG, 'qemu fw_cfg');
    case 'file':
      if (opts.path === undefined) {
        throw new FlotillaError('E_DATASOURCE', 'ignition platform file: no config path given', {});
      }
      return readOptional(opts.path, 'ignition config file');
    case 'metal': {
      const url = await readCmdlineValue('ignition.config.url', opts.cmdlinePath ?? PROC_CMDLINE, log);
      if (url === undefined) return undefined;
      return fetchWithRetry(url, { ...fetch, what: 'ignition.config.url' });
    }
    case 'vmware': {
      const gi = opts.guestinfo ?? new OvfDefaultsGuestInfo(new ToolGuestInfo());
      return readGuestinfoConfig(gi, 'ignition.config.data', 'ignition.config.url', { log, fetch });
    }
    default:
      throw new FlotillaError(
        'E_DATASOURCE',
        `unknown ignition platform ${JSON.stringify(platform)} (one of ${IGNITION_PLATFORMS.join(', ')})`,
        { platform },
      );
  }
}
