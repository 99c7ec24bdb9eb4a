/**
 * Our own GPT reader and writer: both headers, both CRC32s (header and partition array), and the
 * ChromeOS/CoreOS attribute bits the A/B updater lives on (priority 48–51, tries 52–55,
 * successful 56). The disk is a port (`Disk`): a file or a block device opened by path.
 *
 * INVARIANTS: a read checks the primary and the backup copy; one good copy is enough and the bad
 * one is named in `problems` (and rewritten by the next write). A write puts the backup array and
 * header first, fsyncs, then the primary array and header, fsyncs: a crash between the two leaves
 * one complete copy, which the next read prefers when the other fails its CRC.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { FlotillaError } from '../lib/errors.js';

/** What the GPT code needs of a disk: positional reads and writes, its size, and a flush. */
export interface Disk {
  readonly path: string;
  size(): Promise<number>;
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Buffer): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** A disk image file or a block device, opened read-only unless `writable`. */
export async function openDisk(path: string, opts: { writable?: boolean } = {}): Promise<Disk> {
  let fh: FileHandle;
  try {
    fh = await open(path, opts.writable ? 'r+' : 'r');
  } catch (err) {
    throw new FlotillaError(
      'E_GPT',
      `cannot open disk ${path}: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }
  return {
    path,
    async size() {
      const st = await fh.stat();
      // stat() reports 0 for a block device: find its end by reading.
      if (st.isBlockDevice()) return blockDeviceSize(fh);
      return st.size;
    },
    async read(offset, length) {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      if (bytesRead !== length)
        throw new FlotillaError('E_GPT', `short read at ${offset} on ${path}`, { path });
      return buf;
    },
    async write(offset, data) {
      const { bytesWritten } = await fh.write(data, 0, data.length, offset);
      if (bytesWritten !== data.length)
        throw new FlotillaError('E_GPT', `short write at ${offset} on ${path}`);
    },
    sync: () => fh.sync(),
    close: () => fh.close(),
  };
}

/** Size of a block device by binary search for the last readable byte (no ioctl in node). */
async function blockDeviceSize(fh: FileHandle): Promise<number> {
  const one = Buffer.alloc(1);
  let lo = 0;
  let hi = 1;
  while ((await fh.read(one, 0, 1, hi)).bytesRead === 1) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if ((await fh.read(one, 0, 1, mid)).bytesRead === 1) lo = mid;
    else hi = mid;
  }
  return lo + 1;
}

export interface GptHeader {
  currentLba: bigint;
  backupLba: bigint;
  firstUsableLba: bigint;
  lastUsableLba: bigint;
  diskGuid: string;
  entriesLba: bigint;
  entryCount: number;
  entrySize: number;
  headerSize: number;
  headerCrc: number;
  arrayCrc: number;
}

export interface GptPartition {
  /** 1-based partition number, as sgdisk and cgpt count. */
  number: number;
  typeGuid: string;
  uniqueGuid: string;
  firstLba: bigint;
  lastLba: bigint;
  attributes: bigint;
  label: string;
}

export interface Gpt {
  sectorSize: number;
  header: GptHeader;
  partitions: GptPartition[];
  /** Damage found and tolerated on read ("primary header CRC mismatch" …); empty when both copies are good. */
  problems: string[];
}

const SIGNATURE = 'EFI PART';
const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

export function guidFromBytes(b: Buffer): string {
  const h = (s: Buffer) => s.toString('hex');
  const le = (s: Buffer) => h(Buffer.from(s).reverse());
  return `${le(b.subarray(0, 4))}-${le(b.subarray(4, 6))}-${le(b.subarray(6, 8))}-${h(b.subarray(8, 10))}-${h(b.subarray(10, 16))}`;
}

export function guidToBytes(guid: string): Buffer {
  const hex = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new FlotillaError('E_GPT', `invalid GUID ${guid}`);
  const b = Buffer.from(hex, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

function parseHeader(buf: Buffer): { header?: GptHeader; problem?: string } {
  if (buf.toString('latin1', 0, 8) !== SIGNATURE) return { problem: 'no GPT signature' };
  const headerSize = buf.readUInt32LE(12);
  if (headerSize < 92 || headerSize > buf.length) return { problem: `bad header size ${headerSize}` };
  const headerCrc = buf.readUInt32LE(16);
  const copy = Buffer.from(buf.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== headerCrc) return { problem: 'header CRC mismatch' };
  const header: GptHeader = {
    headerSize,
    headerCrc,
    currentLba: buf.readBigUInt64LE(24),
    backupLba: buf.readBigUInt64LE(32),
    firstUsableLba: buf.readBigUInt64LE(40),
    lastUsableLba: buf.readBigUInt64LE(48),
    diskGuid: guidFromBytes(buf.subarray(56, 72)),
    entriesLba: buf.readBigUInt64LE(72),
    entryCount: buf.readUInt32LE(80),
    entrySize: buf.readUInt32LE(84),
    arrayCrc: buf.readUInt32LE(88),
  };
  if (header.entrySize < 128 || header.entrySize % 8 !== 0 || header.entryCount > 4096) {
    return { problem: `bad partition array geometry (${header.entryCount} × ${header.entrySize})` };
  }
  return { header };
}

function parseEntries(array: Buffer, h: GptHeader): GptPartition[] {
  const out: GptPartition[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const e = array.subarray(i * h.entrySize, (i + 1) * h.entrySize);
    const typeGuid = guidFromBytes(e.subarray(0, 16));
    if (typeGuid === ZERO_GUID) continue;
    const name = e.subarray(56, 128).toString('utf16le');
    out.push({
      number: i + 1,
      typeGuid,
      uniqueGuid: guidFromBytes(e.subarray(16, 32)),
      firstLba: e.readBigUInt64LE(32),
      lastLba: e.readBigUInt64LE(40),
      attributes: e.readBigUInt64LE(48),
      label: name.replace(/\0.*$/s, ''),
    });
  }
  return out;
}

interface Copy {
  header?: GptHeader;
  array?: Buffer;
  problem?: string;
}

async function readCopy(disk: Disk, lba: bigint, sector: number): Promise<Copy> {
  const size = await disk.size();
  if ((Number(lba) + 1) * sector > size) return { problem: 'header beyond the end of the disk' };
  const { header, problem } = parseHeader(await disk.read(Number(lba) * sector, sector));
  if (!header) return { problem: problem ?? 'unreadable header' };
  if (header.currentLba !== lba)
    return { problem: `header says it is at LBA ${header.currentLba}, found at ${lba}` };
  const len = header.entryCount * header.entrySize;
  const start = Number(header.entriesLba) * sector;
  if (start + len > size) return { problem: 'partition array beyond the end of the disk' };
  const array = await disk.read(start, len);
  if (crc32(array) !== header.arrayCrc) return { problem: 'partition array CRC mismatch' };
  return { header, array };
}

/** Read the GPT, checking both copies; throws E_GPT when neither copy is valid. */
export async function readGpt(disk: Disk): Promise<Gpt> {
  const size = await disk.size();
  let firstProblem = 'no GPT found';
  for (const sector of [512, 4096]) {
    if (size < sector * 3) continue;
    const lastLba = BigInt(Math.floor(size / sector) - 1);
    const primary = await readCopy(disk, 1n, sector);
    if (sector === 4096 && primary.problem === 'no GPT signature') continue;
    // The backup is where the primary says, else at the last LBA (where sgdisk and GRUB look).
    const backupLba = primary.header?.backupLba ?? lastLba;
    const backup = await readCopy(disk, backupLba, sector);
    const problems: string[] = [];
    if (primary.problem) problems.push(`primary: ${primary.problem}`);
    if (backup.problem) problems.push(`backup: ${backup.problem}`);
    const good = primary.header ? primary : backup.header ? backup : undefined;
    if (!good?.header || !good.array) {
      if (primary.problem !== 'no GPT signature' || backup.problem !== 'no GPT signature')
        firstProblem = problems.join('; ');
      continue;
    }
    if (primary.array && backup.array && !primary.array.equals(backup.array)) {
      problems.push('primary and backup partition arrays differ (primary used)');
    }
    // Describe the table as the primary would: the backup copy's own fields are swapped.
    const header: GptHeader = primary.header
      ? primary.header
      : { ...good.header, currentLba: 1n, backupLba, entriesLba: 2n };
    return { sectorSize: sector, header, partitions: parseEntries(good.array, good.header), problems };
  }
  throw new FlotillaError('E_GPT', `${disk.path}: no valid GPT (${firstProblem})`, { path: disk.path });
}

function encodeEntries(gpt: Gpt): Buffer {
  const { entryCount, entrySize } = gpt.header;
  const array = Buffer.alloc(entryCount * entrySize);
  for (const p of gpt.partitions) {
    if (p.number < 1 || p.number > entryCount)
      throw new FlotillaError('E_GPT', `partition ${p.number} out of range`);
    const e = array.subarray((p.number - 1) * entrySize, p.number * entrySize);
    guidToBytes(p.typeGuid).copy(e, 0);
    guidToBytes(p.uniqueGuid).copy(e, 16);
    e.writeBigUInt64LE(p.firstLba, 32);
    e.writeBigUInt64LE(p.lastLba, 40);
    e.writeBigUInt64LE(BigInt.asUintN(64, p.attributes), 48);
    const name = Buffer.from(p.label, 'utf16le');
    if (name.length > 72)
      throw new FlotillaError('E_GPT', `partition ${p.number} label too long: ${p.label}`);
    name.copy(e, 56);
  }
  return array;
}

function encodeHeader(
  h: GptHeader,
  current: bigint,
  backup: bigint,
  entriesLba: bigint,
  arrayCrc: number,
  sector: number,
): Buffer {
  const buf = Buffer.alloc(sector);
  buf.write(SIGNATURE, 0, 'latin1');
  buf.writeUInt32LE(0x00010000, 8);
  buf.writeUInt32LE(92, 12);
  buf.writeBigUInt64LE(current, 24);
  buf.writeBigUInt64LE(backup, 32);
  buf.writeBigUInt64LE(h.firstUsableLba, 40);
  buf.writeBigUInt64LE(h.lastUsableLba, 48);
  guidToBytes(h.diskGuid).copy(buf, 56);
  buf.writeBigUInt64LE(entriesLba, 72);
  buf.writeUInt32LE(h.entryCount, 80);
  buf.writeUInt32LE(h.entrySize, 84);
  buf.writeUInt32LE(arrayCrc, 88);
  buf.writeUInt32LE(crc32(buf.subarray(0, 92)), 16);
  return buf;
}

/**
 * Write the partition table (both copies, backup first). The caller changes `gpt.partitions`
 * (attributes, usually) and hands the result back; geometry is kept from `gpt.header`.
 */
export async function writeGpt(disk: Disk, gpt: Gpt): Promise<void> {
  const sector = gpt.sectorSize;
  const array = encodeEntries(gpt);
  const arrayCrc = crc32(array);
  const arraySectors = BigInt(Math.ceil(array.length / sector));
  const backupLba = gpt.header.backupLba;
  const backupEntries = backupLba - arraySectors;
  if (backupEntries <= gpt.header.lastUsableLba)
    throw new FlotillaError('E_GPT', 'backup array overlaps usable space');
  await disk.write(Number(backupEntries) * sector, array);
  await disk.write(
    Number(backupLba) * sector,
    encodeHeader(gpt.header, backupLba, 1n, backupEntries, arrayCrc, sector),
  );
  await disk.sync();
  await disk.write(Number(gpt.header.entriesLba) * sector, array);
  await disk.write(sector, encodeHeader(gpt.header, 1n, backupLba, gpt.header.entriesLba, arrayCrc, sector));
  await disk.sync();
}

/** The cgpt/gptprio attribute fields of one partition. */
export interface BootFlags {
  priority: number;
  tries: number;
  successful: boolean;
}

export function bootFlags(attributes: bigint): BootFlags {
  return {
    priority: Number((attributes >> 48n) & 0xfn),
    tries: Number((attributes >> 52n) & 0xfn),
    successful: ((attributes >> 56n) & 1n) === 1n,
  };
}

/** Attributes with the three fields replaced; every other bit (60 read-only, 63 no-auto …) kept. */
export function withBootFlags(attributes: bigint, f: BootFlags): bigint {
  for (const [name, v, max] of [
    ['priority', f.priority, 15],
    ['tries', f.tries, 15],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > max)
      throw new FlotillaError('E_GPT', `${name} must be 0–${max}, got ${v}`);
  }
  const cleared = attributes & ~(0x1ffn << 48n);
  return cleared | (BigInt(f.priority) << 48n) | (BigInt(f.tries) << 52n) | ((f.successful ? 1n : 0n) << 56n);
}
