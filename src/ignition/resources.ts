/**
 * Ignition resources (`contents`, `append`, `ignition.config.merge/replace`): `data:` URLs (RFC
 * 2397, percent-encoded or `;base64`), `http(s)` through fetchWithRetry (its retries and bounds,
 * with the resource's `httpHeaders`), then `compression: gzip` and `verification.hash`
 * (`sha512-` / `sha256-`, of the decompressed contents as spec 3.x defines it). Errors name the
 * resource's config path; contents and hashes are never logged.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { MAX_BODY_BYTES, fetchWithRetry, type FetchOptions } from '../datasource/http.js';
import { FlotillaError } from '../lib/errors.js';
import type { IgnitionConfig, Resource } from './types.js';

export interface ResourceOptions {
  fetch?: FetchOptions;
}

function fail(where: string, message: string): never {
  throw new FlotillaError('E_IGNITION', `${where}: ${message}`, { path: where });
}

/** Decode an RFC 2397 `data:` URL. */
export function decodeDataUrl(url: string, where = 'data url'): Buffer {
  const comma = url.indexOf(',');
  if (!url.startsWith('data:') || comma < 0) fail(where, 'invalid data url: no "," separates the data');
  const meta = url.slice(5, comma);
  const data = url.slice(comma + 1);
  if (/%(?![0-9A-Fa-f]{2})/.test(data)) fail(where, 'invalid data url: bad percent-encoding');
  // Percent escapes are bytes; other characters stand for their UTF-8 bytes.
  const bytes = Buffer.from(
    data.replace(/%([0-9A-Fa-f]{2})|([^%])/gu, (_m, hex: string | undefined, ch: string | undefined) =>
      hex !== undefined
        ? String.fromCharCode(parseInt(hex, 16))
        : Buffer.from(ch!, 'utf8').toString('latin1'),
    ),
    'latin1',
  );
  if (/;base64$/i.test(meta)) {
    const text = bytes.toString('latin1').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1)
      fail(where, 'invalid data url: bad base64 data');
    return Buffer.from(text, 'base64');
  }
  return bytes;
}

/** Fetch, decompress and verify one resource. `where` is its path (`storage.files[0].contents`). */
export async function fetchResource(r: Resource, where: string, opts: ResourceOptions = {}): Promise<Buffer> {
  const src = r.source ?? undefined;
  if (src === undefined) return Buffer.alloc(0);
  let raw: Buffer;
  if (src.startsWith('data:')) {
    raw = decodeDataUrl(src, where);
  } else if (/^https?:/i.test(src)) {
    const headers: Record<string, string> = { ...opts.fetch?.headers };
    for (const h of r.httpHeaders ?? []) if (h.value != null) headers[h.name] = h.value;
    try {
      raw = await fetchWithRetry(src, { ...opts.fetch, headers, what: where });
    } catch (err) {
      if (err instanceof FlotillaError)
        throw new FlotillaError('E_IGNITION', `${where}: ${err.message}`, { path: where }, { cause: err });
      throw err;
    }
  } else {
    fail(where, 'unsupported source scheme (only data, http and https)');
  }
  let out = raw;
  if (r.compression === 'gzip') {
    try {
      out = gunzipSync(raw, { maxOutputLength: MAX_BODY_BYTES });
    } catch (err) {
      const e = err as Error & { code?: string };
      fail(
        where,
        `invalid gzip data: ${e.code === 'ERR_BUFFER_TOO_LARGE' ? 'larger than 16 MiB once decompressed' : e.message}`,
      );
    }
  } else if (r.compression != null && r.compression !== '') {
    fail(where, `invalid compression method ${JSON.stringify(r.compression)}`);
  }
  const hash = r.verification?.hash ?? undefined;
  if (hash !== undefined) {
    const m = /^(sha512|sha256)-([0-9a-f]+)$/.exec(hash);
    if (!m) fail(where, 'invalid verification hash');
    const got = createHash(m[1]!).update(out).digest('hex');
    // The hashes themselves stay out of the message (the brief: never log contents or hashes).
    if (got !== m[2]) fail(where, `${m[1]} hash mismatch: the contents are not the ones the config names`);
  }
  return out;
}

/**
 * Every file resource's contents fetched, keyed by its config location:
 * `storage.files[I].contents` and `storage.files[I].append[J]`. Runs before planning so the
 * planner stays pure. Fetches run one after another (a first-boot config is small; this keeps
 * the retry logs readable).
 */
export async function resolveContents(
  cfg: IgnitionConfig,
  opts: ResourceOptions = {},
): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const files = cfg.storage?.files ?? [];
  for (const [i, f] of files.entries()) {
    if (f.contents) {
      const k = `storage.files[${i}].contents`;
      out.set(k, await fetchResource(f.contents, `${k} ${f.path}`, opts));
    }
    for (const [j, a] of (f.append ?? []).entries()) {
      const k = `storage.files[${i}].append[${j}]`;
      out.set(k, await fetchResource(a, `${k} ${f.path}`, opts));
    }
  }
  return out;
}
