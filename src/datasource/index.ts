/**
 * Datasources chosen from coreos-cloudinit's flags (host-tools.md §1.1, §1.8).
 *
 * Only `-from-file` (local-file) is here so far; the other sources are being added in this folder
 * and, until then, are refused with E_DATASOURCE naming the flag.
 */
import { readFile, stat } from 'node:fs/promises';
import { FlotillaError } from '../lib/errors.js';
import type { Datasource, Metadata } from './types.js';

export type { Datasource, Metadata } from './types.js';

export interface SourceFlags {
  fromFile?: string;
  fromUrl?: string;
  fromConfigdrive?: string;
  fromProcCmdline?: boolean;
  fromVmwareGuestinfo?: boolean;
  fromVmwareOvfEnv?: string;
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
export function datasourcesFromFlags(flags: SourceFlags): Datasource[] {
  const out: Datasource[] = [];
  if (flags.fromFile !== undefined) out.push(new FileDatasource(flags.fromFile));
  const pending: [keyof SourceFlags, string][] = [
    ['fromUrl', '-from-url'],
    ['fromConfigdrive', '-from-configdrive'],
    ['fromProcCmdline', '-from-proc-cmdline'],
    ['fromVmwareGuestinfo', '-from-vmware-guestinfo'],
    ['fromVmwareOvfEnv', '-from-vmware-ovf-env'],
  ];
  for (const [k, flag] of pending) {
    if (flags[k] !== undefined && flags[k] !== false)
      throw new FlotillaError('E_DATASOURCE', `${flag}: this datasource is not in this build yet`, { flag });
  }
  return out;
}
