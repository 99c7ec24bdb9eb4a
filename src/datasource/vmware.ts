/**
 * `-from-vmware-guestinfo` and `-from-vmware-ovf-env PATH` (type `vmware`, host-tools.md §1.9).
 *
 * Values come from guestinfo (guestinfo.ts: vmware-rpctool, else vmtoolsd), with the OVF
 * environment in `guestinfo.ovfenv` as defaults (a key set directly wins), or, with an ovf-env.xml
 * path, from that file's properties only (`guestinfo.<key>`).
 *
 * - User-data: `coreos.config.data` decoded by `coreos.config.data.encoding` (encoding.ts); when
 *   the data is empty, `coreos.config.url` fetched with GetRetry's rules, the encoding still
 *   applied; neither means empty user-data.
 * - Metadata: vmware-network.ts (hostname, addresses by role, `networkUnits`).
 * - Available (not rechecked): the OVF file exists; or a guestinfo tool is installed and either
 *   the DMI vendor is VMware or one of the datasource's keys answers.
 */
import { readFile, stat } from 'node:fs/promises';
import { nullLogger, type Logger } from '../lib/log.js';
import { decodeConfigData } from './encoding.js';
import {
  OvfDefaultsGuestInfo,
  OvfGuestInfo,
  ToolGuestInfo,
  readOvfEnvFile,
  type GuestInfo,
} from './guestinfo.js';
import { fetchWithRetry, type FetchOptions } from './http.js';
import { networkMetadata, readVmwareNetwork } from './vmware-network.js';
import type { Datasource, Metadata } from './types.js';

export const DMI_SYS_VENDOR = '/sys/class/dmi/id/sys_vendor';

export interface VmwareOptions {
  /** The guestinfo port (default: ToolGuestInfo with the OVF env as defaults). */
  guestinfo?: GuestInfo;
  /** `-from-vmware-ovf-env PATH`: read this ovf-env.xml instead of guestinfo. */
  ovfEnvPath?: string;
  /** DMI vendor file (default /sys/class/dmi/id/sys_vendor). */
  dmiPath?: string;
  log?: Logger;
  fetch?: FetchOptions;
}

/** Keys whose presence shows guestinfo is answering for this machine. */
const PROBE_KEYS = [
  'coreos.config.data',
  'coreos.config.url',
  'ignition.config.data',
  'ignition.config.url',
  'hostname',
];

/** Read `dataKey` (+ `.encoding`), else `urlKey`, decoded; undefined when neither is set. */
export async function readGuestinfoConfig(
  gi: GuestInfo,
  dataKey: string,
  urlKey: string | undefined,
  opts: { log?: Logger; fetch?: FetchOptions } = {},
): Promise<Buffer | undefined> {
  const data = await gi.get(dataKey);
  const encoding = await gi.get(`${dataKey}.encoding`);
  if (data !== undefined && data !== '') {
    return decodeConfigData(Buffer.from(data, 'utf8'), encoding, `guestinfo.${dataKey}`);
  }
  const url = urlKey === undefined ? undefined : await gi.get(urlKey);
  if (url === undefined || url === '') return undefined;
  const body = await fetchWithRetry(url, {
    log: opts.log ?? nullLogger,
    ...opts.fetch,
    what: `guestinfo.${urlKey}`,
  });
  return decodeConfigData(body, encoding, `guestinfo.${dataKey}`);
}

export class VmwareDatasource implements Datasource {
  readonly type = 'vmware';
  private readonly log: Logger;
  private gi: GuestInfo | undefined;

  constructor(private readonly opts: VmwareOptions = {}) {
    this.log = opts.log ?? nullLogger;
    if (opts.guestinfo !== undefined) this.gi = opts.guestinfo;
    else if (opts.ovfEnvPath === undefined) this.gi = new OvfDefaultsGuestInfo(new ToolGuestInfo());
  }

  private async guestinfo(): Promise<GuestInfo> {
    this.gi ??= new OvfGuestInfo(await readOvfEnvFile(this.opts.ovfEnvPath!));
    return this.gi;
  }

  async isAvailable(): Promise<boolean> {
    if (this.opts.ovfEnvPath !== undefined && this.opts.guestinfo === undefined) {
      return stat(this.opts.ovfEnvPath).then(
        (s) => s.isFile(),
        () => false,
      );
    }
    const gi = await this.guestinfo();
    if (!(await gi.reachable())) return false;
    const vendor = await readFile(this.opts.dmiPath ?? DMI_SYS_VENDOR, 'utf8').catch(() => '');
    if (/vmware/i.test(vendor)) return true;
    for (const k of PROBE_KEYS) if ((await gi.get(k)) !== undefined) return true;
    return false;
  }

  availabilityChanges(): boolean {
    return false;
  }

  configRoot(): string {
    return '/';
  }

  async fetchMetadata(): Promise<Metadata> {
    return networkMetadata(await readVmwareNetwork(await this.guestinfo()));
  }

  async fetchUserdata(): Promise<Buffer> {
    const gi = await this.guestinfo();
    return (
      (await readGuestinfoConfig(gi, 'coreos.config.data', 'coreos.config.url', {
        log: this.log,
        ...(this.opts.fetch ? { fetch: this.opts.fetch } : {}),
      })) ?? Buffer.alloc(0)
    );
  }
}
