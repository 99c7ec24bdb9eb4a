/**
 * Building a bundle (operators and tests): compress an image into `payload.<ext>`, hash both, write
 * the signed `manifest.json` next to it. Everything is validated before anything is written; the
 * manifest is written last and atomically, so a half-built bundle has no manifest.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FlotillaError } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import {
  BUNDLE_FORMAT,
  formatEnvelope,
  parsePrivateKey,
  signManifest,
  validateManifest,
  type Compression,
  type Envelope,
  type Manifest,
} from './bundle.js';
import { compressor } from './compress.js';

export const MANIFEST_NAME = 'manifest.json';
const EXT: Record<Compression, string> = { raw: 'img', gzip: 'img.gz', zstd: 'img.zst' };

export interface MakeBundleOptions {
  image: string;
  outDir: string;
  /** PEM private key text, or a KeyObject. */
  key: string | KeyObject;
  version: string;
  board: string;
  arch: string;
  compression: Compression;
  created?: Date;
}

function hashing(h: ReturnType<typeof createHash>, count: { n: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      count.n += chunk.length;
      cb(null, chunk);
    },
  });
}

export async function makeBundle(
  o: MakeBundleOptions,
): Promise<{ envelope: Envelope; manifestPath: string; payloadPath: string }> {
  const key = typeof o.key === 'string' ? parsePrivateKey(o.key, 'signing key') : o.key;
  let st;
  try {
    st = statSync(o.image);
  } catch (err) {
    throw new FlotillaError('E_USAGE', `image ${o.image}: ${(err as Error).message}`);
  }
  if (!st.isFile() || st.size === 0)
    throw new FlotillaError('E_USAGE', `image ${o.image}: not a non-empty file`);
  const payload = `payload.${EXT[o.compression]}`;
  // Validate the fields we were given before writing a byte (sizes and hashes are placeholders).
  const probe: Manifest = {
    format: BUNDLE_FORMAT,
    version: o.version,
    board: o.board,
    arch: o.arch,
    payload,
    size: 1,
    sha256: '0'.repeat(64),
    compression: o.compression,
    imageSize: 1,
    imageSha256: '0'.repeat(64),
    created: (o.created ?? new Date()).toISOString(),
  };
  validateManifest({ ...probe, compression: 'gzip' });
  mkdirSync(o.outDir, { recursive: true, mode: 0o755 });
  const payloadPath = join(o.outDir, payload);
  const imageHash = createHash('sha256');
  const payloadHash = createHash('sha256');
  const imageCount = { n: 0 };
  const payloadCount = { n: 0 };
  try {
    await pipeline(
      createReadStream(o.image),
      hashing(imageHash, imageCount),
      compressor(o.compression),
      hashing(payloadHash, payloadCount),
      createWriteStream(payloadPath, { mode: 0o644 }),
    );
  } catch (err) {
    rmSync(payloadPath, { force: true });
    throw err;
  }
  const manifest: Manifest = {
    ...probe,
    size: payloadCount.n,
    sha256: payloadHash.digest('hex'),
    imageSize: imageCount.n,
    imageSha256: imageHash.digest('hex'),
  };
  const envelope = signManifest(manifest, key);
  const manifestPath = join(o.outDir, MANIFEST_NAME);
  writeAtomic(manifestPath, formatEnvelope(envelope), { mode: 0o644 });
  return { envelope, manifestPath, payloadPath };
}

export function readKeyFile(path: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new FlotillaError('E_USAGE', `key ${path}: ${(err as Error).message}`);
  }
  return parsePrivateKey(pem, path);
}
