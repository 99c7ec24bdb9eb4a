/**
 * HTTP GET with coreos-cloudinit's retry rules (host-tools.md §1.8, `pkg/http_client.go` GetRetry),
 * through got. Used by the url and proc-cmdline datasources, VMware's `coreos.config.url`, and by
 * Ignition for `http(s)` contents.
 *
 * - Only `http:` and `https:` URLs.
 * - Each attempt has its own timeout (10 s); up to 15 attempts, sleeping 50 ms, doubling, capped at
 *   5 s between them.
 * - Network errors, timeouts and 5xx are retried; 4xx is final at once ("not found", code
 *   E_DATASOURCE with `details.notFound`), as the originals treat it.
 * - The body is bounded (16 MiB by default): a larger one is refused, not buffered.
 * - Abortable through `signal` (also during the sleep between attempts).
 * - Every failed attempt is logged with the URL (userinfo and query removed: they may carry
 *   credentials), the attempt number and the error; the body is never logged.
 */
import { got, type Response } from 'got';
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { sleep } from '../lib/backoff.js';

export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface FetchOptions {
  /** Attempts in all (default 15). */
  attempts?: number;
  /** Per-attempt timeout in ms (default 10 000). */
  timeoutMs?: number;
  /** First sleep between attempts in ms (default 50), doubled each time. */
  initialBackoffMs?: number;
  /** Cap of the sleep between attempts in ms (default 5 000). */
  maxBackoffMs?: number;
  /** Largest body accepted (default 16 MiB). */
  maxBytes?: number;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  log?: Logger;
  /** What the fetch is for, in logs and errors (e.g. "-from-url"). */
  what?: string;
}

/** The URL as it may appear in a log: no user, password, query or fragment. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    const hadQuery = u.search !== '';
    u.search = '';
    u.hash = '';
    return hadQuery ? `${u.toString()}?…` : u.toString();
  } catch {
    return '<invalid URL>';
  }
}

/** True when err is fetchWithRetry's final "not found" (a 4xx answer). */
export function isNotFound(err: unknown): boolean {
  return err instanceof FlotillaError && err.code === 'E_DATASOURCE' && err.details.notFound === true;
}

class Final extends Error {}

async function once(
  url: string,
  opts: Required<Pick<FetchOptions, 'timeoutMs' | 'maxBytes'>> & FetchOptions,
) {
  const req = got(url, {
    responseType: 'buffer',
    throwHttpErrors: false,
    retry: { limit: 0 },
    timeout: { request: opts.timeoutMs },
    followRedirect: true,
    maxRedirects: 10,
    headers: opts.headers ?? {},
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  let oversize = false;
  void req.on('response', (res: Response) => {
    const len = Number(res.headers['content-length']);
    if (Number.isFinite(len) && len > opts.maxBytes) {
      oversize = true;
      req.cancel();
    }
  });
  void req.on('downloadProgress', (p: { transferred: number }) => {
    if (p.transferred > opts.maxBytes) {
      oversize = true;
      req.cancel();
    }
  });
  try {
    return await req;
  } catch (err) {
    if (oversize) throw new Final(`the body is larger than ${opts.maxBytes} bytes`);
    throw err;
  }
}

/**
 * GET url and return its body. Throws FlotillaError E_DATASOURCE naming the URL when every attempt
 * failed, at once for a 4xx (`details.notFound`), a bad URL, an oversize body or an abort.
 */
export async function fetchWithRetry(url: string, opts: FetchOptions = {}): Promise<Buffer> {
  const log = opts.log ?? nullLogger;
  const attempts = opts.attempts ?? 15;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxBytes = opts.maxBytes ?? MAX_BODY_BYTES;
  const maxBackoff = opts.maxBackoffMs ?? 5_000;
  let backoff = opts.initialBackoffMs ?? 50;
  const shown = redactUrl(url);
  const what = opts.what ? `${opts.what}: ` : '';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FlotillaError('E_DATASOURCE', `${what}invalid URL ${JSON.stringify(shown)}`, { url: shown });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FlotillaError(
      'E_DATASOURCE',
      `${what}${shown}: only http and https URLs are supported, not ${parsed.protocol}`,
      { url: shown },
    );
  }
  let last = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (opts.signal?.aborted) {
      throw new FlotillaError('E_DATASOURCE', `${what}fetching ${shown}: aborted`, { url: shown });
    }
    try {
      const res = await once(url, { ...opts, timeoutMs, maxBytes });
      if (res.statusCode >= 200 && res.statusCode < 300) return res.body;
      if (res.statusCode >= 400 && res.statusCode < 500) {
        throw new FlotillaError('E_DATASOURCE', `${what}${shown}: not found (HTTP ${res.statusCode})`, {
          url: shown,
          status: res.statusCode,
          notFound: true,
        });
      }
      last = `HTTP ${res.statusCode}`;
    } catch (err) {
      if (err instanceof FlotillaError) throw err;
      if (err instanceof Final) {
        throw new FlotillaError('E_DATASOURCE', `${what}${shown}: ${err.message}`, { url: shown });
      }
      if (opts.signal?.aborted) {
        throw new FlotillaError('E_DATASOURCE', `${what}fetching ${shown}: aborted`, { url: shown });
      }
      const e = err as Error & { code?: string };
      last = e.code ? `${e.code}: ${e.message}` : e.message;
    }
    log.warn(
      { url: shown, attempt, of: attempts, error: last },
      `fetching ${shown} failed (attempt ${attempt})`,
    );
    if (attempt === attempts) break;
    try {
      await sleep(backoff, opts.signal);
    } catch {
      throw new FlotillaError('E_DATASOURCE', `${what}fetching ${shown}: aborted`, { url: shown });
    }
    backoff = Math.min(backoff * 2, maxBackoff);
  }
  throw new FlotillaError(
    'E_DATASOURCE',
    `${what}cannot fetch ${shown} after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${last}`,
    { url: shown, attempts },
  );
}
