import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  formatEnvelope,
  generateSigningKey,
  parsePrivateKey,
  parsePublicKey,
  signManifest,
  type Manifest,
} from '../../../src/update/bundle.js';
import { downloadBundle } from '../../../src/update/download.js';
import { loadStagedBundle } from '../../../src/update/staging.js';
import { scratch, type Scratch } from './disk-image.js';
import { rawManifest } from './manifest-fixture.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const key = generateSigningKey();
const other = generateSigningKey();
const keys = [parsePublicKey(key.publicPem, 'test.pub')];
const target = { board: 'amd64-usr', arch: 'amd64' };
const payload = randomBytes(3 * 1024 * 1024 + 123);
const manifest: Manifest = rawManifest(payload, '2.0.0');
const envelope = (m: Manifest, pem = key.privatePem) =>
  formatEnvelope(signManifest(m, parsePrivateKey(pem, 'k')));

/** A real HTTP server on 127.0.0.1: `/cut/` drops the connection after 1 MiB on the first payload GET. */
let server: Server;
let base: string;
const ranges: (string | undefined)[] = [];
let cuts = 0;
beforeAll(async () => {
  server = createServer((req, res) => {
    const [, mode, file] = (req.url ?? '').split('/');
    if (file === 'manifest.json') {
      if (mode === 'huge') {
        res.end(' '.repeat(5 * 1024 * 1024));
        return;
      }
      let m = manifest;
      if (mode === 'arm') m = { ...manifest, arch: 'arm64' };
      if (mode === 'big') m = { ...manifest, size: payload.length - 10, imageSize: payload.length - 10 };
      res.end(mode === 'otherkey' ? envelope(m, other.privatePem) : envelope(m));
      return;
    }
    if (file !== 'payload.img') {
      res.statusCode = 404;
      res.end();
      return;
    }
    ranges.push(req.headers.range);
    let body = payload;
    if (mode === 'tampered') {
      body = Buffer.from(payload);
      body[1000] = body[1000]! ^ 0xff;
    }
    let start = 0;
    const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (r && mode !== 'norange') {
      start = Number(r[1]);
      res.writeHead(206, {
        'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
        'content-length': body.length - start,
      });
    } else res.writeHead(200, { 'content-length': body.length });
    if ((mode === 'cut' || mode === 'norange') && cuts < 2) {
      cuts++;
      res.write(body.subarray(start, start + 1024 * 1024), () => res.socket?.destroy());
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

let s: Scratch;
afterEach(() => {
  s?.cleanup();
  ranges.length = 0;
  cuts = 0;
});
const fast = { attempts: 5, backoffMs: 10, maxBackoffMs: 20, idleTimeoutMs: 5000 };

describe('downloadBundle against a real HTTP server', () => {
  it('resumes with Range after the server cuts the connection, and stages a verified payload 0600', async () => {
    s = scratch();
    const progress: number[] = [];
    const staged = await downloadBundle({
      ...fast,
      manifestUrl: `${base}/cut/manifest.json`,
      keys,
      target,
      stagingDir: join(s.dir, 'stage'),
      onProgress: (p) => progress.push(p.bytes),
    });
    // Each cut loses what was still in flight, so the resume offsets are at most 1 MiB per cut.
    expect(ranges).toHaveLength(3);
    expect(ranges[0]).toBeUndefined();
    const offsets = ranges.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r ?? '')?.[1]));
    expect(offsets[0]).toBeGreaterThan(0);
    expect(offsets[0]).toBeLessThanOrEqual(1024 * 1024);
    expect(offsets[1]).toBeGreaterThan(offsets[0]!);
    expect(offsets[1]).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(sha(readFileSync(staged.payloadPath))).toBe(manifest.sha256);
    expect(statSync(staged.payloadPath).mode & 0o777).toBe(0o600);
    expect(statSync(join(s.dir, 'stage')).mode & 0o777).toBe(0o700);
    expect(progress.at(-1)).toBe(payload.length);
    expect(progress.every((v, i) => i === 0 || v >= progress[i - 1]!)).toBe(true);
    // The staged bundle verifies again from disk (what write-slot does).
    const again = await loadStagedBundle(join(s.dir, 'stage'), keys, target);
    expect(again.manifest.version).toBe('2.0.0');
  });

  it('restarts from zero when the server ignores Range', async () => {
    s = scratch();
    const staged = await downloadBundle({
      ...fast,
      manifestUrl: `${base}/norange/manifest.json`,
      keys,
      target,
      stagingDir: s.dir,
    });
    // The server answers every Range with 200 and the whole body: each attempt starts over.
    expect(ranges).toHaveLength(3);
    expect(ranges.slice(1).every((r) => /^bytes=\d+-$/.test(r ?? ''))).toBe(true);
    expect(sha(readFileSync(staged.payloadPath))).toBe(manifest.sha256);
  });

  it('tampered bytes: E_UPDATE_VERIFY and nothing left staged', async () => {
    s = scratch();
    await expect(
      downloadBundle({
        ...fast,
        manifestUrl: `${base}/tampered/manifest.json`,
        keys,
        target,
        stagingDir: s.dir,
      }),
    ).rejects.toThrow(/SHA-256 mismatch/);
    expect(readdirSync(s.dir).filter((f) => f.includes('payload') || f.endsWith('.part'))).toEqual([]);
  });

  it('a payload longer than the manifest says is cut off as oversized', async () => {
    s = scratch();
    await expect(
      downloadBundle({ ...fast, manifestUrl: `${base}/big/manifest.json`, keys, target, stagingDir: s.dir }),
    ).rejects.toThrow(/oversized/);
  });

  it('wrong key and wrong arch are refused before any payload request', async () => {
    s = scratch();
    await expect(
      downloadBundle({
        ...fast,
        manifestUrl: `${base}/otherkey/manifest.json`,
        keys,
        target,
        stagingDir: s.dir,
      }),
    ).rejects.toMatchObject({ code: 'E_UPDATE_VERIFY' });
    await expect(
      downloadBundle({ ...fast, manifestUrl: `${base}/arm/manifest.json`, keys, target, stagingDir: s.dir }),
    ).rejects.toThrow(/arch/);
    expect(ranges).toEqual([]);
  });

  it('not enough free space: E_UPDATE_SPACE before the payload', async () => {
    s = scratch();
    await expect(
      downloadBundle({
        ...fast,
        manifestUrl: `${base}/ok/manifest.json`,
        keys,
        target,
        stagingDir: s.dir,
        reserveBytes: 2 ** 52,
      }),
    ).rejects.toMatchObject({ code: 'E_UPDATE_SPACE' });
    expect(ranges).toEqual([]);
  });

  it('a manifest body over the limit is cut off, not buffered', async () => {
    s = scratch();
    await expect(
      downloadBundle({ ...fast, manifestUrl: `${base}/huge/manifest.json`, keys, target, stagingDir: s.dir }),
    ).rejects.toMatchObject({ code: 'E_UPDATE_MANIFEST' });
    expect(ranges).toEqual([]);
  });

  it('a 404 is final: E_UPDATE_DOWNLOAD without retries', async () => {
    s = scratch();
    await expect(
      downloadBundle({ ...fast, manifestUrl: `${base}/ok/missing.json`, keys, target, stagingDir: s.dir }),
    ).rejects.toThrow(/404/);
  });

  it('a staged file from a cut run resumes in the next run', async () => {
    s = scratch();
    writeFileSync(join(s.dir, `${manifest.sha256}.part`), payload.subarray(0, 500_000));
    await downloadBundle({
      ...fast,
      manifestUrl: `${base}/ok/manifest.json`,
      keys,
      target,
      stagingDir: s.dir,
    });
    expect(ranges).toEqual(['bytes=500000-']);
    expect(existsSync(join(s.dir, `${manifest.sha256}.part`))).toBe(false);
  });
});
