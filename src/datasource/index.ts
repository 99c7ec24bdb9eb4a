/**
 * Datasources chosen from coreos-cloudinit's flags (host-tools.md §1.1, §1.8), in its order:
 * file, url, configdrive, proc-cmdline, vmware-guestinfo, vmware-ovf-env. Selection among them is
 * select.ts; each source is its own file here.
 */
import { readFile, stat } from 'node:fs/promises';
import { FlotillaError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { CONFIG_DRIVE_LABEL, ConfigDriveDatasource, type ConfigDriveOptions } from './config-drive.js';
import type { GuestInfo } from './guestinfo.js';
import type { FetchOptions } from './http.js';
import { ProcCmdlineDatasource } from './proc-cmdline.js';
import type { Datasource, Metadata } from './types.js';
import { UrlDatasource } from './url.js';
import { VmwareDatasource } from './vmware.js';

export type { Datasource, Metadata } from './types.js';
export { selectDatasource, NO_DATASOURCE, type SelectOptions } from './select.js';
export { fetchWithRetry, isNotFound, redactUrl, type FetchOptions } from './http.js';
export { fetchIgnitionConfig, type IgnitionPlatform, type IgnitionFetchOptions } from './ignition.js';
export { ConfigDriveDatasource, findConfigDrive, CONFIG_DRIVE_LABEL } from './config-drive.js';
export { UrlDatasource } from './url.js';
export { ProcCmdlineDatasource } from './proc-cmdline.js';
export { VmwareDatasource } from './vmware.js';
export { ToolGuestInfo, type GuestInfo } from './guestinfo.js';

export interface SourceFlags {
  fromFile?: string;
  fromUrl?: string;
  /** A directory, or a block device (mounted read-only while read). */
  fromConfigdrive?: string;
  /** Find the config drive by file-system label (e.g. `config-2`) at boot. */
  fromConfigdriveLabel?: string;
  fromProcCmdline?: boolean;
  fromVmwareGuestinfo?: boolean;
  fromVmwareOvfEnv?: string;
}

/** Ports and options the sources share (all optional: the defaults are the real host). */
export interface SourceDeps {
  log?: Logger;
  fetch?: FetchOptions;
  /** For -from-proc-cmdline (default /proc/cmdline). */
  cmdlinePath?: string;
  /** For -from-vmware-guestinfo (default vmware-rpctool / vmtoolsd with the OVF env as defaults). */
  guestinfo?: GuestInfo;
  /** For -from-vmware-guestinfo: the DMI vendor file (default /sys/class/dmi/id/sys_vendor). */
  dmiPath?: string;
  configDrive?: Omit<ConfigDriveOptions, 'log'>;
}

/** `-from-file PATH`: available while the path exists; user-data is its bytes; no metadata. */
export class FileDatasource implements Datasource {
  readonly type = 'local-file';
  constructor(private readonly path: string) {}
  async isAvailable(): Promise<boolean> {
    return stat(this.path).then(
      () => true,
      () => false,
    );
  }
  availabilityChanges(): boolean {
    return true;
  }
  configRoot(): string {
    return this.path;
  }
  fetchMetadata(): Promise<Metadata> {
    return Promise.resolve({ sshPublicKeys: {} });
  }
  async fetchUserdata(): Promise<Buffer> {
    try {
      return await readFile(this.path);
    } catch (err) {
      throw new FlotillaError('E_DATASOURCE', `local-file ${this.path}: ${(err as Error).message}`, {
        source: 'local-file',
      });
    }
  }
}

/** The datasources the flags name, in coreos-cloudinit's order. */
export function datasourcesFromFlags(flags: SourceFlags, deps: SourceDeps = {}): Datasource[] {
  const common = {
    ...(deps.log ? { log: deps.log } : {}),
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  };
  const out: Datasource[] = [];
  if (flags.fromFile !== undefined) out.push(new FileDatasource(flags.fromFile));
  if (flags.fromUrl !== undefined) out.push(new UrlDatasource(flags.fromUrl, common));
  const drive = { ...deps.configDrive, ...(deps.log ? { log: deps.log } : {}) };
  if (flags.fromConfigdrive !== undefined) out.push(new ConfigDriveDatasource(flags.fromConfigdrive, drive));
  if (flags.fromConfigdriveLabel !== undefined) {
    out.push(new ConfigDriveDatasource({ label: flags.fromConfigdriveLabel || CONFIG_DRIVE_LABEL }, drive));
  }
  if (flags.fromProcCmdline === true) {
    out.push(
      new ProcCmdlineDatasource({
        ...common,
        ...(deps.cmdlinePath ? { cmdlinePath: deps.cmdlinePath } : {}),
      }),
    );
  }
  if (flags.fromVmwareGuestinfo === true) {
    out.push(
      new VmwareDatasource({
        ...common,
        ...(deps.guestinfo ? { guestinfo: deps.guestinfo } : {}),
        ...(deps.dmiPath ? { dmiPath: deps.dmiPath } : {}),
      }),
    );
  }
  if (flags.fromVmwareOvfEnv !== undefined)
    out.push(new VmwareDatasource({ ...common, ovfEnvPath: flags.fromVmwareOvfEnv }));
  return out;
}
