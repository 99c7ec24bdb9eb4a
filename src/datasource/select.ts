/**
 * Datasource selection, as coreos-cloudinit's selectDatasource (host-tools.md §1.8): every source
 * is polled at once; one that is not available and whose availability can change is polled again
 * after 100 ms, doubling, capped at 30 s; the first available source wins. After the overall
 * timeout (5 min) selection fails with `No datasources available in time`. It also fails as soon
 * as every source has given up (none can change), rather than sleeping out the timeout.
 */
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import type { Datasource } from './types.js';
import { Backoff } from '../lib/backoff.js';

export interface SelectOptions {
  /** Overall bound in ms (default 5 min). */
  timeoutMs?: number;
  /** First retry delay in ms (default 100). */
  initialBackoffMs?: number;
  /** Largest retry delay in ms (default 30 000). */
  maxBackoffMs?: number;
  log?: Logger;
  signal?: AbortSignal;
}

export const NO_DATASOURCE = 'No datasources available in time';

/** The first of `sources` to become available (see the module comment). */
export function selectDatasource(sources: Datasource[], opts: SelectOptions = {}): Promise<Datasource> {
  const log = opts.log ?? nullLogger;
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const maxBackoff = opts.maxBackoffMs ?? 30_000;
  return new Promise<Datasource>((resolve, reject) => {
    const timers = new Set<NodeJS.Timeout>();
    let done = false;
    let givenUp = 0;
    const finish = (err: Error | undefined, ds?: Datasource): void => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      clearTimeout(overall);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(ds!);
    };
    const timeoutError = (): FlotillaError =>
      new FlotillaError('E_DATASOURCE', NO_DATASOURCE, {
        sources: sources.map((s) => `${s.type} ${s.configRoot()}`),
      });
    const onAbort = (): void => finish(new FlotillaError('E_DATASOURCE', 'datasource selection aborted', {}));
    const overall = setTimeout(() => {
      log.error({ timeoutMs }, NO_DATASOURCE);
      finish(timeoutError());
    }, timeoutMs);
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (sources.length === 0) return finish(timeoutError());

    const poll = async (ds: Datasource, backoff: Backoff): Promise<void> => {
      if (done) return;
      let ok = false;
      try {
        ok = await ds.isAvailable();
      } catch (err) {
        log.warn(
          { type: ds.type, root: ds.configRoot(), error: (err as Error).message },
          'datasource check failed',
        );
      }
      if (done) return;
      if (ok) {
        log.info({ type: ds.type, root: ds.configRoot() }, `datasource ${ds.type} available`);
        return finish(undefined, ds);
      }
      if (!ds.availabilityChanges()) {
        log.info({ type: ds.type, root: ds.configRoot() }, `datasource ${ds.type} not available`);
        if (++givenUp === sources.length) {
          log.error({}, NO_DATASOURCE);
          finish(timeoutError());
        }
        return;
      }
      log.debug(
        { type: ds.type, root: ds.configRoot(), retryMs: backoff.peek() },
        `datasource ${ds.type} not available yet`,
      );
      const t = setTimeout(() => {
        timers.delete(t);
        void poll(ds, backoff);
      }, backoff.next());
      timers.add(t);
    };
    const first = opts.initialBackoffMs ?? 100;
    for (const ds of sources) void poll(ds, new Backoff(first, Math.max(first, maxBackoff)));
  });
}
