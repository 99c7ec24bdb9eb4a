import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkTarget,
  generateSigningKey,
  parseEnvelope,
  parsePrivateKey,
  parsePublicKey,
  PayloadVerifier,
  signManifest,
  verifyEnvelope,
  type Manifest,
} from '../../../src/update/bundle.js';
import { decompressor, nativeZstd } from '../../../src/update/compress.js';
import { loadTrustedKeys } from '../../../src/update/keys.js';
import { makeBundle } from '../../../src/update/make-bundle.js';
import { scratch, type Scratch } from './disk-image.js';
import { rawManifest } from './manifest-fixture.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const k1 = generateSigningKey();
const k2 = generateSigningKey();
const trusted = [parsePublicKey(k1.publicPem, 'k1.pub')];
const payload = Buffer.from('an os image '.repeat(100));
const manifest: Manifest = rawManifest(payload, '4081.2.0');
const signed = () => signManifest(manifest, parsePrivateKey(k1.privatePem, 'k1'));
const err = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('did not throw');
};

describe('manifest signature', () => {
  it('a signed manifest round-trips through JSON and verifies with its key', () => {
    const env = parseEnvelope(JSON.stringify(signed()));
    expect(verifyEnvelope(env, trusted).manifest).toEqual(manifest);
    expect(env.signatures[0]!.keyid).toBe(k1.keyid);
  });

  it('any change to a signed field breaks the signature (E_UPDATE_VERIFY)', () => {
    const env = signed();
    const tampered = parseEnvelope(
      JSON.stringify({
        ...env,
        signed: { ...env.signed, size: env.signed.size + 1, imageSize: env.signed.size + 1 },
      }),
    );
    const e = err(() => verifyEnvelope(tampered, trusted));
    expect(e.code).toBe('E_UPDATE_VERIFY');
    expect(e.message).toMatch(/does not verify/);
  });

  it('a manifest signed by another key is refused, naming the keyid', () => {
    const env = signManifest(manifest, parsePrivateKey(k2.privatePem, 'k2'));
    const e = err(() => verifyEnvelope(env, trusted));
    expect(e.code).toBe('E_UPDATE_VERIFY');
    expect(e.message).toContain(k2.keyid);
    expect(e.message).toMatch(/not a trusted key/);
  });

  it('a signature copied under the trusted keyid does not verify', () => {
    const env = signManifest(manifest, parsePrivateKey(k2.privatePem, 'k2'));
    env.signatures[0]!.keyid = k1.keyid;
    expect(err(() => verifyEnvelope(env, trusted)).code).toBe('E_UPDATE_VERIFY');
  });

  it('no trusted keys: nothing verifies', () => {
    expect(err(() => verifyEnvelope(signed(), [])).message).toMatch(/no trusted update keys/);
  });
});

describe('manifest validation (E_UPDATE_MANIFEST names the field)', () => {
  const env = () => JSON.parse(JSON.stringify(signed())) as Record<string, Record<string, unknown>>;
  const cases: [string, (e: Record<string, Record<string, unknown>>) => void, RegExp][] = [
    ['unsigned', (e) => (e.signatures = [] as never), /not signed/],
    ['unknown field', (e) => (e.signed!.extra = 'x'), /extra: unknown field/],
    ['bad sha256', (e) => (e.signed!.sha256 = 'XYZ'), /sha256/],
    ['negative size', (e) => (e.signed!.size = -1), /size: must be a positive integer/],
    ['bad compression', (e) => (e.signed!.compression = 'bz2'), /compression/],
    ['payload with a path', (e) => (e.signed!.payload = '../etc/passwd'), /payload/],
    ['wrong format', (e) => (e.signed!.format = 'other/1'), /format/],
  ];
  for (const [name, mutate, re] of cases) {
    it(name, () => {
      const e = env();
      mutate(e);
      const x = err(() => parseEnvelope(JSON.stringify(e)));
      expect(x.code).toBe('E_UPDATE_MANIFEST');
      expect(x.message).toMatch(re);
    });
  }
  it('not JSON, and too big', () => {
    expect(err(() => parseEnvelope('{')).message).toMatch(/not JSON/);
    expect(err(() => parseEnvelope(' '.repeat(70_000))).message).toMatch(/limit/);
  });
});

describe('target checks', () => {
  it('another board or arch is E_UPDATE_MANIFEST; an image over the slot size is E_UPDATE_SPACE', () => {
    expect(err(() => checkTarget(manifest, { board: 'arm64-usr', arch: 'amd64' })).message).toMatch(
      /board: amd64-usr/,
    );
    expect(err(() => checkTarget(manifest, { board: 'amd64-usr', arch: 'arm64' })).message).toMatch(
      /arch: amd64/,
    );
    const big = err(() => checkTarget(manifest, { board: 'amd64-usr', arch: 'amd64', slotSize: 100 }));
    expect(big.code).toBe('E_UPDATE_SPACE');
    expect(() =>
      checkTarget(manifest, { board: 'amd64-usr', arch: 'amd64', slotSize: payload.length }),
    ).not.toThrow();
  });
});

describe('payload verifier', () => {
  it('accepts the exact bytes', () => {
    const v = new PayloadVerifier(payload.length, sha(payload));
    v.update(payload.subarray(0, 10));
    v.update(payload.subarray(10));
    expect(() => v.finish()).not.toThrow();
  });
  it('truncated, oversized, tampered', () => {
    const t = new PayloadVerifier(payload.length, sha(payload));
    t.update(payload.subarray(0, 100));
    expect(err(() => t.finish()).message).toMatch(/truncated: 100 of/);
    const o = new PayloadVerifier(payload.length, sha(payload));
    expect(err(() => o.update(Buffer.concat([payload, Buffer.from('x')]))).message).toMatch(/oversized/);
    const bad = Buffer.from(payload);
    bad[5] = bad[5]! ^ 1;
    const m = new PayloadVerifier(payload.length, sha(payload));
    m.update(bad);
    expect(err(() => m.finish()).message).toMatch(/SHA-256 mismatch/);
  });
});

describe('keys directory', () => {
  let s: Scratch;
  afterEach(() => s?.cleanup());
  it('loads *.pub and names a bad file', () => {
    s = scratch();
    writeFileSync(join(s.dir, 'a.pub'), k1.publicPem);
    writeFileSync(join(s.dir, 'README'), 'not a key');
    expect(loadTrustedKeys(s.dir).map((k) => k.keyid)).toEqual([k1.keyid]);
    writeFileSync(join(s.dir, 'b.pub'), 'garbage');
    const e = err(() => loadTrustedKeys(s.dir));
    expect(e.code).toBe('E_CONFIG');
    expect(e.message).toContain('b.pub');
    expect(loadTrustedKeys(join(s.dir, 'none'))).toEqual([]);
  });
});

describe('make-bundle', () => {
  let s: Scratch;
  afterEach(() => s?.cleanup());
  const modes: [string, 'raw' | 'gzip' | 'zstd', boolean][] = [
    ['raw', 'raw', false],
    ['gzip', 'gzip', false],
    ['zstd (binary)', 'zstd', true],
  ];
  if (nativeZstd) modes.push(['zstd (node:zlib)', 'zstd', false]);
  for (const [name, compression, forceBinary] of modes) {
    it(`${name}: the manifest verifies and the payload decompresses to the image`, async () => {
      s = scratch();
      const image = join(s.dir, 'image');
      const bytes = Buffer.concat([randomBytes(100_000), Buffer.alloc(300_000, 7)]);
      writeFileSync(image, bytes);
      const { manifestPath, payloadPath } = await makeBundle({
        image,
        outDir: join(s.dir, 'out'),
        key: k1.privatePem,
        version: '1.2.3',
        board: 'amd64-usr',
        arch: 'amd64',
        compression,
      });
      const { manifest: m } = verifyEnvelope(parseEnvelope(readFileSync(manifestPath)), trusted);
      expect(m.imageSize).toBe(bytes.length);
      expect(m.imageSha256).toBe(sha(bytes));
      expect(m.sha256).toBe(sha(readFileSync(payloadPath)));
      const chunks: Buffer[] = [];
      await pipeline(
        createReadStream(payloadPath),
        decompressor(compression, { forceBinary }),
        new Writable({
          write(c: Buffer, _e, cb) {
            chunks.push(c);
            cb();
          },
        }),
      );
      expect(sha(Buffer.concat(chunks))).toBe(sha(bytes));
    });
  }
});
