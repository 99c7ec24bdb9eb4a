/**
 * Fetching a bundle into the staging directory (default /var/lib/flotilla/update, 0700; files
 * 0600): the manifest first (bounded, verified against the trusted keys and this machine), then
 * the payload with HTTP Range resume into `<sha256>.part`, bounded in time and attempts, with a
 * progress callback. The staged payload is verified (size + SHA-256) before it is renamed to
 * `<sha256>.payload`; only a verified, staged bundle is ever handed to the slot writer.
 *
 * INVARIANTS: https never follows a redirect to http; a 4xx, a tampered payload or a manifest
 * problem is final (no retry); a cut connection resumes from the bytes already on disk; free
 * space is checked before the first payload byte (E_UPDATE_SPACE).
 */
import { chmodSync, mkdirSync, renameSync, rmSync, statSync, truncateSync } from 'node:fs';
import { open, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { got, type Response } from 'got';
import { redactUrl } from '../datasource/http.js';
import { sleep } from '../lib/backoff.js';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { STAGED_MANIFEST, STAGING_DIR, verifyStagedPayload, type StagedBundle } from './staging.js';
import {
  checkTarget,
  MAX_MANIFEST_BYTES,
  parseEnvelope,
  verifyEnvelope,
  type Manifest,
  type Target,
  type TrustedKey,
} from './bundle.js';

export { STAGING_DIR };

export interface Progress {
  bytes: number;
  total: number;
}

export interface DownloadOptions {
  manifestUrl: string;
  keys: readonly TrustedKey[];
  target: Target;
  stagingDir?: string;
  /** Attempts for the payload (each resumes); default 8. */
  attempts?: number;
  /** No byte for this long ends an attempt; default 30 s. */
  idleTimeoutMs?: number;
  /** The whole download (all attempts); default 2 h. */
  totalTimeoutMs?: number;
  backoffMs?: number;
  maxBackoffMs?: number;
  onProgress?: (p: Progress) => void;
  /** Seen before each payload request: the Range header sent (tests, logs). */
  onRequest?: (range: string | undefined) => void;
  signal?: AbortSignal;
  log?: Logger;
  /** A further check of the verified manifest (the Omaha transport binds it to its answer). */
  checkManifest?: (m: Manifest, bytes: Buffer) => void;
  /** Bytes kept free in the staging file system besides the payload; default 16 MiB. */
  reserveBytes?: number;
}

class Final extends Error {}

function downloadError(msg: string, url: string, cause?: unknown): FlotillaError {
  return new FlotillaError('E_UPDATE_DOWNLOAD', msg, { url: redactUrl(url) }, cause ? { cause } : undefined);
}

function checkUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw downloadError(`invalid update URL ${JSON.stringify(redactUrl(url))}`, url);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw downloadError(`${redactUrl(url)}: only http and https update URLs are supported`, url);
  return u;
}

/** No https → http redirect (TLS never downgrades). */
const redirectHooks = (from: URL) => ({
  beforeRedirect: [
    (options: { url?: URL | string | undefined }) => {
      const to = options.url ? new URL(String(options.url)) : undefined;
      if (from.protocol === 'https:' && to && to.protocol !== 'https:')
        throw new Final(`refusing a redirect from https to ${to.protocol}`);
    },
  ],
});

async function fetchManifest(url: URL, o: DownloadOptions): Promise<Buffer> {
  const attempts = o.attempts ?? 8;
  let last = '';
  for (let i = 1; i <= attempts; i++) {
    try {
      const req = got(url.href, {
        responseType: 'buffer',
        throwHttpErrors: false,
        retry: { limit: 0 },
        timeout: { request: o.idleTimeoutMs ?? 30_000 },
        hooks: redirectHooks(url),
        ...(o.signal ? { signal: o.signal } : {}),
      });
      // A manifest is small: stop reading a body past the limit instead of buffering it.
      let oversize = false;
      void req.on('downloadProgress', (p: { transferred: number }) => {
        if (p.transferred > MAX_MANIFEST_BYTES) {
          oversize = true;
          req.cancel();
        }
      });
      const res = await req.catch((err: unknown) => {
        if (oversize)
          throw new FlotillaError('E_UPDATE_MANIFEST', `update manifest: over ${MAX_MANIFEST_BYTES} bytes`);
        throw err;
      });
      if (res.statusCode >= 400 && res.statusCode < 500)
        throw new Final(`HTTP ${res.statusCode} for the manifest`);
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      if (res.body.length > MAX_MANIFEST_BYTES)
        throw new FlotillaError('E_UPDATE_MANIFEST', `update manifest: over ${MAX_MANIFEST_BYTES} bytes`);
      return res.body;
    } catch (err) {
      if (err instanceof FlotillaError) throw err;
      if (err instanceof Final || o.signal?.aborted)
        throw downloadError(`${redactUrl(url.href)}: ${(err as Error).message}`, url.href, err);
      last = (err as Error).message;
      if (i < attempts) await sleep(Math.min((o.backoffMs ?? 200) * 2 ** (i - 1), o.maxBackoffMs ?? 10_000));
    }
  }
  throw downloadError(
    `${redactUrl(url.href)}: the manifest could not be fetched after ${attempts} attempts: ${last}`,
    url.href,
  );
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
}

/** Free bytes for an unprivileged writer in the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Fetch the manifest, verify its signature and that it fits this machine (no payload byte yet). */
export async function fetchVerifiedManifest(
  o: Pick<
    DownloadOptions,
    | 'manifestUrl'
    | 'keys'
    | 'target'
    | 'attempts'
    | 'idleTimeoutMs'
    | 'backoffMs'
    | 'maxBackoffMs'
    | 'signal'
    | 'checkManifest'
  >,
): Promise<{ manifest: Manifest; manifestBytes: Buffer }> {
  const murl = checkUrl(o.manifestUrl);
  const manifestBytes = await fetchManifest(murl, o);
  const { manifest } = verifyEnvelope(parseEnvelope(manifestBytes), o.keys);
  checkTarget(manifest, o.target);
  o.checkManifest?.(manifest, manifestBytes);
  return { manifest, manifestBytes };
}

/** One payload attempt: GET with Range from `have`, append to `part`. Returns the bytes on disk after. */
async function attemptPayload(url: URL, part: string, m: Manifest, o: DownloadOptions): Promise<number> {
  const have = fileSize(part);
  const range = have > 0 ? `bytes=${have}-` : undefined;
  o.onRequest?.(range);
  const stream = got.stream(url, {
    throwHttpErrors: false,
    retry: { limit: 0 },
    timeout: {
      lookup: 10_000,
      connect: 10_000,
      secureConnect: 10_000,
      socket: o.idleTimeoutMs ?? 30_000,
      response: o.idleTimeoutMs ?? 30_000,
    },
    headers: range ? { range } : {},
    hooks: redirectHooks(url),
    decompress: false,
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const res: Response = await new Promise((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('error', reject);
  });
  let offset = 0;
  if (res.statusCode === 206) {
    const m2 = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
    if (!m2 || Number(m2[1]) !== have) {
      stream.destroy();
      truncateSync(part, 0);
      throw new Error(
        `server answered Range ${range} with Content-Range ${res.headers['content-range']}: restarting`,
      );
    }
    offset = have;
  } else if (res.statusCode === 200) {
    offset = 0; // no Range support: start over
  } else if (res.statusCode === 416 && have === m.size) {
    stream.destroy();
    return have;
  } else {
    stream.destroy();
    if (res.statusCode === 416) {
      truncateSync(part, 0);
      throw new Error('HTTP 416: the partial file does not fit the payload, restarting');
    }
    if (res.statusCode >= 400 && res.statusCode < 500)
      throw new Final(`HTTP ${res.statusCode} for the payload`);
    throw new Error(`HTTP ${res.statusCode}`);
  }
  // Count what the server sent (the oversize bound) and, separately, what reached the file (progress).
  let received = offset;
  let written = offset;
  const bound = new Transform({
    transform(chunk: Buffer, _e, cb) {
      received += chunk.length;
      if (received > m.size)
        return cb(
          new FlotillaError(
            'E_UPDATE_VERIFY',
            `update payload is larger than the ${m.size} bytes the manifest states (oversized payload)`,
            { expected: m.size },
          ),
        );
      cb(null, chunk);
    },
  });
  const fh = await open(part, offset === 0 ? 'w' : 'a', 0o600);
  try {
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        fh.write(chunk).then(() => {
          written += chunk.length;
          o.onProgress?.({ bytes: written, total: m.size });
          cb();
        }, cb);
      },
    });
    await pipeline(stream, bound, sink);
  } finally {
    await fh.close();
  }
  return written;
}

/**
 * Download and verify a bundle into the staging directory. Resolves with the staged bundle once
 * the payload is complete and verified; throws E_UPDATE_MANIFEST / E_UPDATE_VERIFY /
 * E_UPDATE_SPACE / E_UPDATE_DOWNLOAD.
 */
export async function downloadBundle(o: DownloadOptions): Promise<StagedBundle> {
  const log = o.log ?? nullLogger;
  const dir = o.stagingDir ?? STAGING_DIR;
  const murl = checkUrl(o.manifestUrl);
  const { manifest, manifestBytes } = await fetchVerifiedManifest(o);
  const purl = new URL(manifest.payload, murl);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const part = join(dir, `${manifest.sha256}.part`);
  const payloadPath = join(dir, `${manifest.sha256}.payload`);
  const manifestPath = join(dir, STAGED_MANIFEST);
  const staged = { manifest, manifestBytes, dir, payloadPath, manifestPath };
  // A payload staged and verified earlier is reused.
  if (fileSize(payloadPath) === manifest.size) {
    try {
      await verifyStagedPayload(payloadPath, manifest);
      writeAtomic(manifestPath, manifestBytes, { mode: 0o600 });
      return staged;
    } catch {
      rmSync(payloadPath, { force: true });
    }
  }
  if (fileSize(part) > manifest.size) truncateSync(part, 0);
  const need = manifest.size - fileSize(part) + (o.reserveBytes ?? 16 * 1024 * 1024);
  const free = await freeBytes(dir);
  if (free < need)
    throw new FlotillaError(
      'E_UPDATE_SPACE',
      `${dir}: ${free} bytes free, the update payload needs ${need} (payload ${manifest.size} + reserve)`,
      { dir, free, need },
    );
  const deadline = Date.now() + (o.totalTimeoutMs ?? 2 * 3600_000);
  const attempts = o.attempts ?? 8;
  let last = '';
  let done = false;
  for (let i = 1; i <= attempts && !done; i++) {
    if (Date.now() > deadline) break;
    try {
      const got_ = await attemptPayload(purl, part, manifest, o);
      done = got_ === manifest.size;
      if (!done) last = `connection ended at ${got_} of ${manifest.size} bytes`;
    } catch (err) {
      if (err instanceof FlotillaError) {
        rmSync(part, { force: true });
        throw err;
      }
      if (err instanceof Final || o.signal?.aborted)
        throw downloadError(`${redactUrl(purl.href)}: ${(err as Error).message}`, purl.href, err);
      last = (err as Error).message;
    }
    if (!done) {
      log.warn(
        { url: redactUrl(purl.href), attempt: i, have: fileSize(part), error: last },
        'update download interrupted, resuming',
      );
      if (i < attempts) await sleep(Math.min((o.backoffMs ?? 200) * 2 ** (i - 1), o.maxBackoffMs ?? 10_000));
    }
  }
  if (!done) {
    throw downloadError(
      `${redactUrl(purl.href)}: download incomplete after ${attempts} attempts (${fileSize(part)} of ${manifest.size} bytes): ${last}`,
      purl.href,
    );
  }
  try {
    await verifyStagedPayload(part, manifest);
  } catch (err) {
    rmSync(part, { force: true });
    throw err;
  }
  renameSync(part, payloadPath);
  writeAtomic(manifestPath, manifestBytes, { mode: 0o600 });
  log.info({ version: manifest.version, bytes: manifest.size }, 'update payload downloaded and verified');
  return staged;
}
