/**
 * `-from-proc-cmdline` (type `proc-cmdline`, host-tools.md §1.8): available when the kernel command
 * line has `cloud-config-url=URL` (or `cloud_config_url=`; the last one wins; not rechecked); the
 * user-data is that URL fetched with GetRetry's rules; no metadata.
 */
import { nullLogger, type Logger } from '../lib/log.js';
import { FlotillaError } from '../lib/errors.js';
import { PROC_CMDLINE, readCmdlineValue } from './cmdline.js';
import { fetchWithRetry, redactUrl, type FetchOptions } from './http.js';
import type { Datasource, Metadata } from './types.js';

export const CLOUD_CONFIG_URL = 'cloud-config-url';

export interface ProcCmdlineOptions {
  /** The command line file (default /proc/cmdline). */
  cmdlinePath?: string;
  log?: Logger;
  fetch?: FetchOptions;
}

export class ProcCmdlineDatasource implements Datasource {
  readonly type = 'proc-cmdline';
  private readonly log: Logger;
  private readonly path: string;
  private url: string | undefined;
  constructor(private readonly opts: ProcCmdlineOptions = {}) {
    this.log = opts.log ?? nullLogger;
    this.path = opts.cmdlinePath ?? PROC_CMDLINE;
  }
  async isAvailable(): Promise<boolean> {
    this.url = await readCmdlineValue(CLOUD_CONFIG_URL, this.path, this.log);
    return this.url !== undefined;
  }
  availabilityChanges(): boolean {
    return false;
  }
  configRoot(): string {
    return this.url === undefined ? this.path : redactUrl(this.url);
  }
  fetchMetadata(): Promise<Metadata> {
    return Promise.resolve({ sshPublicKeys: {} });
  }
  async fetchUserdata(): Promise<Buffer> {
    const url = this.url ?? (await readCmdlineValue(CLOUD_CONFIG_URL, this.path, this.log));
    if (url === undefined) {
      throw new FlotillaError('E_DATASOURCE', `-from-proc-cmdline: no ${CLOUD_CONFIG_URL}= in ${this.path}`, {
        path: this.path,
      });
    }
    return fetchWithRetry(url, { log: this.log, ...this.opts.fetch, what: CLOUD_CONFIG_URL });
  }
}
