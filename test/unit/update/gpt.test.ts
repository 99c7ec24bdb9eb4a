import { openSync, closeSync, writeSync, readFileSync, writeFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCode } from '../../../src/lib/errors.js';
import { bootFlags, openDisk, readGpt, withBootFlags, writeGpt } from '../../../src/update/gpt.js';
import { applyFlags, findSlots, flagsOf, formatSlots, markInstalled } from '../../../src/update/slots.js';
import {
  coreosImage,
  scratch,
  sgdisk,
  sgdiskBits,
  sgdiskInfo,
  sgdiskMissing,
  USR_A_GUID,
  USR_B_GUID,
  type Scratch,
} from './disk-image.js';

describe.skipIf(sgdiskMissing)('GPT on sgdisk-made images', () => {
  let s: Scratch;
  let img: string;
  beforeEach(() => {
    s = scratch();
    img = coreosImage(join(s.dir, 'disk.img'));
  });
  afterEach(() => s.cleanup());

  it('reads what sgdisk wrote: labels, GUIDs, extents and attribute bits', async () => {
    const disk = await openDisk(img);
    try {
      const gpt = await readGpt(disk);
      expect(gpt.problems).toEqual([]);
      expect(gpt.partitions.map((p) => p.number)).toEqual([1, 3, 4, 9]);
      for (const p of gpt.partitions) {
        const info = sgdiskInfo(img, p.number);
        expect(p.label).toBe(info.name);
        expect(p.uniqueGuid).toBe(info.guid);
        expect(p.attributes).toBe(info.attrs);
        expect([p.firstLba, p.lastLba]).toEqual([info.first, info.last]);
      }
      const [a, b] = findSlots(gpt);
      expect(a.partition.uniqueGuid).toBe(USR_A_GUID);
      expect(b.partition.uniqueGuid).toBe(USR_B_GUID);
      expect([a.priority, a.tries, a.successful]).toEqual([2, 0, true]);
      expect([b.priority, b.tries, b.successful]).toEqual([1, 0, false]);
    } finally {
      await disk.close();
    }
  });

  it('writes attribute bits that sgdisk reads back, and sgdisk -v finds both copies consistent', async () => {
    const disk = await openDisk(img, { writable: true });
    try {
      const gpt = await readGpt(disk);
      const slots = findSlots(gpt);
      // An installed update: B priority 2, tries 1; A priority 1, successful.
      await writeGpt(disk, applyFlags(gpt, slots, markInstalled(flagsOf(slots), 'B')));
    } finally {
      await disk.close();
    }
    expect(sgdiskBits(img, 3)).toEqual([48, 56]); // priority 1, successful
    expect(sgdiskBits(img, 4)).toEqual([49, 52]); // priority 2, tries 1
    expect(sgdisk('-v', img)).toMatch(/No problems found/);
    // The bits set through sgdisk are read by us too (the other direction).
    sgdisk('-A4:set:53', '-A4:set:51', img);
    const d2 = await openDisk(img);
    try {
      const b = findSlots(await readGpt(d2))[1];
      expect([b.priority, b.tries, b.successful]).toEqual([10, 3, false]);
    } finally {
      await d2.close();
    }
  });

  it('recovers from a corrupted primary header from the backup, and the next write repairs it', async () => {
    const fd = openSync(img, 'r+');
    writeSync(fd, Buffer.from('garbage!'), 0, 8, 512 + 24); // inside the primary header: CRC now wrong
    closeSync(fd);
    const disk = await openDisk(img, { writable: true });
    try {
      const gpt = await readGpt(disk);
      expect(gpt.problems).toEqual(['primary: header CRC mismatch']);
      expect(findSlots(gpt)[0].priority).toBe(2);
      await writeGpt(disk, gpt);
      expect((await readGpt(disk)).problems).toEqual([]);
    } finally {
      await disk.close();
    }
    expect(sgdisk('-v', img)).toMatch(/No problems found/);
  });

  it('names a damaged partition array, and fails with E_GPT when both copies are bad', async () => {
    const bytes = readFileSync(img);
    bytes[1024 + 128 * 2 + 60]! ^= 0xff; // partition 3's label, primary array
    writeFileSync(img, bytes);
    let disk = await openDisk(img);
    expect((await readGpt(disk)).problems).toEqual(['primary: partition array CRC mismatch']);
    await disk.close();
    const last = bytes.length - 512;
    bytes[last + 30]! ^= 0xff; // backup header
    writeFileSync(img, bytes);
    disk = await openDisk(img);
    const err = await readGpt(disk).catch((e: unknown) => e);
    await disk.close();
    expect(isCode(err, 'E_GPT')).toBe(true);
    expect(String(err)).toMatch(/primary: partition array CRC mismatch; backup: header CRC mismatch/);
  });

  it('refuses a disk without a GPT, and one without an A/B pair', async () => {
    const blank = join(s.dir, 'blank.img');
    writeFileSync(blank, '');
    truncateSync(blank, 8 * 1024 * 1024);
    const d = await openDisk(blank);
    await expect(readGpt(d)).rejects.toThrow(/no valid GPT/);
    await d.close();
    const plain = coreosImage(join(s.dir, 'plain.img'), { labels: ['data1', 'data2'] });
    const p = await openDisk(plain);
    const err = (() => {
      return readGpt(p).then((g) => findSlots(g, plain));
    })();
    await expect(err).rejects.toThrow(/no A\/B slot pair.*found EFI-SYSTEM, data1, data2, ROOT/);
    await p.close();
  });

  it('root-a/root-b labels are slots too, and the listing reads like cgpt show', async () => {
    const deb = coreosImage(join(s.dir, 'deb.img'), { labels: ['root-a', 'root-b'] });
    const d = await openDisk(deb);
    const gpt = await readGpt(d);
    await d.close();
    const text = formatSlots(gpt, deb);
    expect(text).toContain('Label: "root-a"');
    expect(text).toMatch(
      /Label: "root-a"\n.*Type: coreos-usr\n.*UUID: 7130C94A-213A-4E5A-8E26-6CCE9662F132\n\s+Attr: priority=2 tries=0 successful=1\n/,
    );
    expect(text).toMatch(/Label: "root-b"[\s\S]*?Attr: priority=1 tries=0 successful=0/);
    expect(text).not.toMatch(/Label: "ROOT"\n.*\n.*\n\s+Attr/);
  });
});

describe('attribute bit fields', () => {
  it('packs priority 48–51, tries 52–55, successful 56 and keeps other bits', () => {
    const keep = (1n << 60n) | (1n << 63n) | 1n;
    const a = withBootFlags(keep, { priority: 15, tries: 7, successful: true });
    expect(a).toBe(keep | (15n << 48n) | (7n << 52n) | (1n << 56n));
    expect(bootFlags(a)).toEqual({ priority: 15, tries: 7, successful: true });
    expect(bootFlags(withBootFlags(a, { priority: 0, tries: 0, successful: false }))).toEqual({
      priority: 0,
      tries: 0,
      successful: false,
    });
    expect(withBootFlags(a, { priority: 0, tries: 0, successful: false })).toBe(keep);
    expect(() => withBootFlags(0n, { priority: 16, tries: 0, successful: false })).toThrow(
      /priority must be 0–15/,
    );
  });
});
