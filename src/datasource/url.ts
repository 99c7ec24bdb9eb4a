/**
 * `-from-url URL` (type `url`, host-tools.md §1.8): available when one GET succeeds (rechecked, so
 * selection retries while the network comes up); the user-data is fetched with GetRetry's rules
 * (http.ts); no metadata.
 */
import { nullLogger, type Logger } from '../lib/log.js';
import { fetchWithRetry, redactUrl, type FetchOptions } from './http.js';
import type { Datasource, Metadata } from './types.js';

export interface UrlOptions {
  log?: Logger;
  /** Passed to every fetch (timeouts, attempts, signal …). */
  fetch?: FetchOptions;
}

export class UrlDatasource implements Datasource {
  readonly type = 'url';
  private readonly log: Logger;
  constructor(
    private readonly url: string,
    private readonly opts: UrlOptions = {},
  ) {
    this.log = opts.log ?? nullLogger;
  }
  async isAvailable(): Promise<boolean> {
    try {
      await fetchWithRetry(this.url, { ...this.opts.fetch, attempts: 1, what: '-from-url' });
      return true;
    } catch (err) {
      this.log.debug(
        { url: redactUrl(this.url), error: (err as Error).message },
        'url datasource not available yet',
      );
      return false;
    }
  }
  availabilityChanges(): boolean {
    return true;
  }
  configRoot(): string {
    return redactUrl(this.url);
  }
  fetchMetadata(): Promise<Metadata> {
    return Promise.resolve({ sshPublicKeys: {} });
  }
  fetchUserdata(): Promise<Buffer> {
    return fetchWithRetry(this.url, { log: this.log, ...this.opts.fetch, what: '-from-url' });
  }
}
