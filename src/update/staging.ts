/**
 * The staging directory (default /var/lib/flotilla/update, 0700; files 0600): `manifest.json`
 * (the verified envelope as fetched) and `<sha256>.payload`. A bundle reaches it by download
 * (download.ts) or from a local bundle directory (`stageLocalBundle`, for offline updates and
 * tests); the slot writer only ever reads a staged bundle, and verifies it again first.
 */
import {
  chmodSync,
  copyFileSync,
  createReadStream,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import {
  checkTarget,
  parseEnvelope,
  PayloadVerifier,
  verifyEnvelope,
  type Manifest,
  type Target,
  type TrustedKey,
} from './bundle.js';

export const STAGING_DIR = '/var/lib/flotilla/update';
export const STAGED_MANIFEST = 'manifest.json';

/** A downloaded (or resumed) bundle whose manifest is verified, staged under `dir`. */
export interface StagedBundle {
  manifest: Manifest;
  /** The verified manifest envelope bytes as downloaded. */
  manifestBytes: Buffer;
  dir: string;
  payloadPath: string;
  manifestPath: string;
}

/** Verify a staged payload file against its manifest (size, SHA-256). */
export async function verifyStagedPayload(path: string, m: Manifest): Promise<void> {
  const v = new PayloadVerifier(m.size, m.sha256, `staged payload ${path}`);
  await pipeline(createReadStream(path), async function* (src: AsyncIterable<Buffer>) {
    for await (const chunk of src) v.update(chunk);
    yield* [];
  });
  v.finish();
}

/** A bundle staged earlier (by `downloadBundle`), verified again from disk: manifest, key, target, payload. */
export async function loadStagedBundle(
  dir: string,
  keys: readonly TrustedKey[],
  target: Target,
): Promise<StagedBundle> {
  const manifestPath = join(dir, STAGED_MANIFEST);
  let manifestBytes: Buffer;
  try {
    manifestBytes = readFileSync(manifestPath);
  } catch (err) {
    throw new FlotillaError('E_UPDATE_MANIFEST', `no staged update in ${dir}: ${(err as Error).message}`, {
      dir,
    });
  }
  const { manifest } = verifyEnvelope(parseEnvelope(manifestBytes), keys);
  checkTarget(manifest, target);
  const payloadPath = join(dir, `${manifest.sha256}.payload`);
  await verifyStagedPayload(payloadPath, manifest).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT'))
      throw new FlotillaError('E_UPDATE_VERIFY', `staged payload ${payloadPath} is missing`, {
        path: payloadPath,
      });
    throw err;
  });
  return { manifest, manifestBytes, dir, payloadPath, manifestPath };
}

/** Stage a bundle directory (manifest.json + payload): verified before it is copied, and after. */
export async function stageLocalBundle(
  bundleDir: string,
  stagingDir: string,
  keys: readonly TrustedKey[],
  target: Target,
): Promise<StagedBundle> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(bundleDir, STAGED_MANIFEST));
  } catch (err) {
    throw new FlotillaError(
      'E_UPDATE_MANIFEST',
      `${bundleDir}: no ${STAGED_MANIFEST}: ${(err as Error).message}`,
    );
  }
  const { manifest } = verifyEnvelope(parseEnvelope(bytes), keys);
  checkTarget(manifest, target);
  const src = join(bundleDir, manifest.payload);
  await verifyStagedPayload(src, manifest).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) throw new FlotillaError('E_UPDATE_VERIFY', `payload ${src} is missing`);
    throw err;
  });
  mkdirSync(stagingDir, { recursive: true, mode: 0o700 });
  chmodSync(stagingDir, 0o700);
  const payloadPath = join(stagingDir, `${manifest.sha256}.payload`);
  const tmp = `${payloadPath}.tmp`;
  copyFileSync(src, tmp);
  try {
    await verifyStagedPayload(tmp, manifest);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  chmodSync(tmp, 0o600);
  renameSync(tmp, payloadPath);
  const manifestPath = join(stagingDir, STAGED_MANIFEST);
  writeAtomic(manifestPath, bytes, { mode: 0o600 });
  return { manifest, manifestBytes: bytes, dir: stagingDir, payloadPath, manifestPath };
}
