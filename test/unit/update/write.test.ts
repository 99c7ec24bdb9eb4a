/**
 * The slot writer against real GPT image files made by sgdisk: a good write, every bad input
 * writing nothing, and kill -9 of a real `flotilla update write-slot` process mid-write.
 */
import { createHash, randomBytes } from 'node:crypto';
import { openSync, readFileSync, readSync, closeSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSigningKey, parsePublicKey } from '../../../src/update/bundle.js';
import { decodeGrubEnv } from '../../../src/update/grub.js';
import { makeBundle } from '../../../src/update/make-bundle.js';
import { stageLocalBundle } from '../../../src/update/staging.js';
import { writeSlot } from '../../../src/update/write.js';
import { spawnCli } from '../cli/child.js';
import { coreosImage, scratch, sgdisk, sgdiskBits, sgdiskMissing, type Scratch } from './disk-image.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const key = generateSigningKey();
const keys = [parsePublicKey(key.publicPem, 'test.pub')];
const target = { board: 'amd64-usr', arch: 'amd64' };

function region(path: string, offset: number, len: number): Buffer {
  const fd = openSync(path, 'r');
  const b = Buffer.alloc(len);
  readSync(fd, b, 0, len, offset);
  closeSync(fd);
  return b;
}
const fileHash = (p: string) => sha(readFileSync(p));
/** sgdisk's first sector of partition n, in bytes. */
const startOf = (img: string, n: number) =>
  Number(/First sector: (\d+)/.exec(sgdisk(`-i${n}`, img))![1]) * 512;

interface Setup {
  s: Scratch;
  img: string;
  staging: string;
  grubenv: string;
  image: Buffer;
  aBytes: Buffer;
}

async function setup(
  opts: { imageSize?: number; board?: string; compression?: 'gzip' | 'zstd' | 'raw' } = {},
): Promise<Setup> {
  const s = scratch();
  const img = coreosImage(join(s.dir, 'disk.img'));
  // The active slot holds a known image: it must never change.
  const aBytes = Buffer.concat([randomBytes(MiB), Buffer.alloc(7 * MiB, 0xa5)]);
  const fd = openSync(img, 'r+');
  writeSync(fd, aBytes, 0, aBytes.length, startOf(img, 3));
  closeSync(fd);
  const image = Buffer.concat([
    randomBytes(2 * MiB),
    Buffer.alloc((opts.imageSize ?? 6 * MiB) - 2 * MiB, 0x5a),
  ]);
  writeFileSync(join(s.dir, 'image'), image);
  await makeBundle({
    image: join(s.dir, 'image'),
    outDir: join(s.dir, 'bundle'),
    key: key.privatePem,
    version: '2.0.0',
    board: opts.board ?? 'amd64-usr',
    arch: 'amd64',
    compression: opts.compression ?? 'gzip',
  });
  const staging = join(s.dir, 'staging');
  if (!opts.board) await stageLocalBundle(join(s.dir, 'bundle'), staging, keys, target);
  return { s, img, staging, grubenv: join(s.dir, 'grubenv'), image, aBytes };
}

let cur: Setup | undefined;
afterEach(() => {
  cur?.s.cleanup();
  cur = undefined;
});

describe.skipIf(sgdiskMissing)('writeSlot on an sgdisk image', { timeout: 30_000 }, () => {
  for (const compression of ['gzip', 'zstd'] as const) {
    it(`${compression}: writes the passive slot, verifies it, and makes it the trial slot`, async () => {
      const t = (cur = await setup({ compression }));
      const phases: string[] = [];
      const r = await writeSlot({
        disk: t.img,
        stagingDir: t.staging,
        keys,
        board: 'amd64-usr',
        arch: 'amd64',
        booted: 'A',
        grubenv: t.grubenv,
        onProgress: (p) => {
          if (phases.at(-1) !== p.phase) phases.push(p.phase);
        },
      });
      expect(r).toMatchObject({ slot: 'B', version: '2.0.0', bytes: t.image.length });
      expect(phases).toEqual(['writing', 'verifying']);
      expect(sha(region(t.img, startOf(t.img, 4), t.image.length))).toBe(sha(t.image));
      expect(sha(region(t.img, startOf(t.img, 3), 8 * MiB))).toBe(sha(t.aBytes));
      // sgdisk reads our GPT: A priority 1 successful (48, 56); B priority 2 tries 1 (49, 52).
      expect(sgdiskBits(t.img, 3)).toEqual([48, 56]);
      expect(sgdiskBits(t.img, 4)).toEqual([49, 52]);
      expect(sgdisk('-v', t.img)).toMatch(/No problems found/);
      const env = decodeGrubEnv(readFileSync(t.grubenv));
      expect(env).toMatchObject({
        flotilla_b_priority: '2',
        flotilla_b_tries: '1',
        flotilla_b_ok: '0',
        flotilla_a_ok: '1',
      });
    });
  }

  const bad: [string, () => Promise<Setup>, (t: Setup) => void, string, RegExp][] = [
    [
      'an image larger than the slot',
      () => setup({ imageSize: 9 * MiB }),
      () => undefined,
      'E_UPDATE_SPACE',
      /larger than the passive slot/,
    ],
    [
      'a tampered staged payload',
      () => setup(),
      (t) => {
        const f = readFileSync(join(t.staging, 'manifest.json'), 'utf8');
        const p = join(
          t.staging,
          `${(JSON.parse(f) as { signed: { sha256: string } }).signed.sha256}.payload`,
        );
        const b = readFileSync(p);
        b[100] = b[100]! ^ 1;
        writeFileSync(p, b);
      },
      'E_UPDATE_VERIFY',
      /SHA-256 mismatch/,
    ],
    [
      'a truncated staged payload',
      () => setup(),
      (t) => {
        const f = readFileSync(join(t.staging, 'manifest.json'), 'utf8');
        const p = join(
          t.staging,
          `${(JSON.parse(f) as { signed: { sha256: string } }).signed.sha256}.payload`,
        );
        writeFileSync(p, readFileSync(p).subarray(0, 1000));
      },
      'E_UPDATE_VERIFY',
      /truncated/,
    ],
    [
      'a manifest signed by another key',
      () => setup(),
      (t) => {
        const other = generateSigningKey();
        writeFileSync(join(t.s.dir, 'keys-other'), other.publicPem);
      },
      'E_UPDATE_VERIFY',
      /not a trusted key/,
    ],
  ];
  for (const [name, make, spoil, code, re] of bad) {
    it(`${name}: ${code}, and not a byte of the disk changes`, async () => {
      const t = (cur = await make());
      if (name.includes('imageSize') || name.includes('larger')) {
        // Stage it anyway (the staging check has no slot size): the writer must refuse.
        await stageLocalBundle(join(t.s.dir, 'bundle'), t.staging, keys, target).catch(() => undefined);
      }
      spoil(t);
      const before = fileHash(t.img);
      const useKeys = name.includes('another key')
        ? [parsePublicKey(readFileSync(join(t.s.dir, 'keys-other'), 'utf8'), 'other.pub')]
        : keys;
      const err = await writeSlot({
        disk: t.img,
        stagingDir: t.staging,
        keys: useKeys,
        board: 'amd64-usr',
        arch: 'amd64',
        booted: 'A',
        grubenv: t.grubenv,
      }).catch((e: unknown) => e as { code: string; message: string });
      expect(err).toMatchObject({ code });
      expect((err as { message: string }).message).toMatch(re);
      expect(fileHash(t.img)).toBe(before);
    });
  }

  it('a bundle for another board: E_UPDATE_MANIFEST, nothing written', async () => {
    const t = (cur = await setup({ board: 'arm64-usr' }));
    await expect(stageLocalBundle(join(t.s.dir, 'bundle'), t.staging, keys, target)).rejects.toThrow(
      /board: arm64-usr/,
    );
    const before = fileHash(t.img);
    await expect(
      writeSlot({ disk: t.img, stagingDir: t.staging, keys, board: 'amd64-usr', arch: 'amd64', booted: 'A' }),
    ).rejects.toThrow(/no staged update/);
    expect(fileHash(t.img)).toBe(before);
  });

  it('a disk without A/B slots: E_UPDATE_SLOTS, nothing written', async () => {
    const t = (cur = await setup());
    const plain = coreosImage(join(t.s.dir, 'plain.img'), { labels: ['DATA-1', 'DATA-2'] });
    const before = fileHash(plain);
    await expect(
      writeSlot({ disk: plain, stagingDir: t.staging, keys, board: 'amd64-usr', arch: 'amd64', booted: 'A' }),
    ).rejects.toMatchObject({ code: 'E_UPDATE_SLOTS' });
    expect(fileHash(plain)).toBe(before);
  });

  it('kill -9 of write-slot mid-write: the active slot is untouched, the passive one priority 0; a rerun completes', async () => {
    const t = (cur = await setup());
    writeFileSync(join(t.s.dir, 'k.pub'), key.publicPem);
    const { mkdirSync, renameSync } = await import('node:fs');
    mkdirSync(join(t.s.dir, 'keys'));
    renameSync(join(t.s.dir, 'k.pub'), join(t.s.dir, 'keys', 'k.pub'));
    const args = [
      'update',
      'write-slot',
      `--config=${join(t.s.dir, 'none.conf')}`,
      `--disk=${t.img}`,
      '--booted=A',
      `--staging-dir=${t.staging}`,
      `--keys-dir=${join(t.s.dir, 'keys')}`,
      '--board=amd64-usr',
      `--grubenv=${t.grubenv}`,
      '--progress',
    ];
    const child = spawnCli([...args, `--max-bytes-per-second=${2 * MiB}`], {});
    let outText = '';
    let errText = '';
    child.stderr!.on('data', (d: Buffer) => (errText += d.toString()));
    const killedAt = await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        outText += d.toString();
        const m = /writing (\d+) /.exec(outText.split('\n').filter(Boolean).at(-1) ?? '');
        if (m && Number(m[1]) >= 2 * MiB) {
          child.kill('SIGKILL');
          resolve(Number(m[1]));
        }
      });
      child.on('exit', (code) =>
        reject(new Error(`write-slot exited ${code} before it was killed: ${errText}`)),
      );
    });
    await new Promise((r) => child.once('exit', r));
    expect(killedAt).toBeLessThan(t.image.length);
    expect(sha(region(t.img, startOf(t.img, 3), 8 * MiB))).toBe(sha(t.aBytes));
    expect(sgdiskBits(t.img, 3)).toEqual([49, 56]); // A: priority 2, successful — as before
    expect(sgdiskBits(t.img, 4)).toEqual([]); // B: priority 0, tries 0, not successful
    expect(decodeGrubEnv(readFileSync(t.grubenv))).toMatchObject({
      flotilla_b_priority: '0',
      flotilla_b_tries: '0',
    });
    // The next run starts over and completes.
    const again = spawnCli(args, {});
    const code = await new Promise((r) => again.once('exit', r));
    expect(code).toBe(0);
    expect(sha(region(t.img, startOf(t.img, 4), t.image.length))).toBe(sha(t.image));
    expect(sgdiskBits(t.img, 4)).toEqual([49, 52]);
  }, 60_000);
});
