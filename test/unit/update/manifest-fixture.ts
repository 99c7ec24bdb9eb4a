/** A raw (uncompressed) update manifest for `payload`, amd64-usr, as the update tests use it. */
import { createHash } from 'node:crypto';
import type { Manifest } from '../../../src/update/bundle.js';

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export function rawManifest(payload: Buffer, version: string): Manifest {
  return {
    format: 'flotilla-update-bundle/1',
    version,
    board: 'amd64-usr',
    arch: 'amd64',
    payload: 'payload.img',
    size: payload.length,
    sha256: sha256(payload),
    compression: 'raw',
    imageSize: payload.length,
    imageSha256: sha256(payload),
    created: '2026-12-07T01:00:00.000Z',
  };
}
