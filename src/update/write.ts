/**
 * Writing a verified, staged bundle to the passive slot (what `flotilla update write-slot` runs,
 * inside its throttled transient unit).
 *
 * Order, and why it is crash safe:
 *   1. the staged bundle is verified again (signature, target, size, SHA-256) — nothing is written
 *      when that fails;
 *   2. the passive slot is made unbootable (priority 0, tries 0, successful 0) in the GPT and
 *      grubenv, fsynced — from here a crash (power loss, kill -9) leaves a slot that never boots,
 *      and the active slot is never touched;
 *   3. the payload is decompressed into the slot (at most imageSize bytes), fsynced;
 *   4. the slot's first imageSize bytes are read back and hashed against imageSha256;
 *   5. only then the slot gets priority above the active one, tries 1, successful 0 (GPT, grubenv).
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sleep } from '../lib/backoff.js';
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { checkTarget, hostArch, type TrustedKey } from './bundle.js';
import { decompressor } from './compress.js';
import { bootedSlot, commitFlags, openSlotDisk, slotBytes, type SlotDisk } from './disk-ops.js';
import { loadStagedBundle } from './staging.js';
import { markInstalled, markWriting, other, type Flags, type SlotName } from './slots.js';

export interface WriteSlotOptions {
  /** The disk with the GPT (block device or image file). */
  disk: string;
  /** The staging directory holding manifest.json and the payload. */
  stagingDir: string;
  keys: readonly TrustedKey[];
  board: string;
  arch?: string;
  /** The running slot; default: from /proc/cmdline. */
  booted?: string;
  cmdlineFile?: string;
  grubenv?: string;
  /** Write the image here (e.g. /dev/sda4) instead of the disk at the slot's offset. */
  partitionDevice?: string;
  /** A userland rate limit on top of the unit's IOWriteBandwidthMax (0/undefined: none). */
  maxBytesPerSecond?: number;
  onProgress?: (p: { bytes: number; total: number; phase: 'writing' | 'verifying' }) => void;
  log?: Logger;
}

export interface WriteSlotResult {
  slot: SlotName;
  version: string;
  bytes: number;
  flags: Flags;
}

const CHUNK = 1024 * 1024;

/** Where image bytes go: the slot region of the disk, or a partition device from offset 0. */
interface Sink {
  write(pos: number, data: Buffer): Promise<void>;
  read(pos: number, len: number): Promise<Buffer>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

async function sinkFor(sd: SlotDisk, slot: SlotName, partitionDevice?: string): Promise<Sink> {
  if (partitionDevice) {
    let fh: FileHandle;
    try {
      fh = await open(partitionDevice, 'r+');
    } catch (err) {
      throw new FlotillaError('E_GPT', `cannot open ${partitionDevice}: ${(err as Error).message}`, {
        path: partitionDevice,
      });
    }
    return {
      write: async (pos, data) => {
        await fh.write(data, 0, data.length, pos);
      },
      read: async (pos, len) => {
        const b = Buffer.alloc(len);
        const { bytesRead } = await fh.read(b, 0, len, pos);
        return b.subarray(0, bytesRead);
      },
      sync: () => fh.sync(),
      close: () => fh.close(),
    };
  }
  const { offset } = slotBytes(sd, slot);
  return {
    write: (pos, data) => sd.disk.write(offset + pos, data),
    read: (pos, len) => sd.disk.read(offset + pos, len),
    sync: () => sd.disk.sync(),
    close: () => Promise.resolve(),
  };
}

export async function writeSlot(o: WriteSlotOptions): Promise<WriteSlotResult> {
  const log = o.log ?? nullLogger;
  const sd = await openSlotDisk(o.disk, o.grubenv ? { grubenv: o.grubenv } : {});
  try {
    const booted = bootedSlot(sd, o.booted, o.cmdlineFile);
    const passive = other(booted);
    const { size: slotSize } = slotBytes(sd, passive);
    // 1. Verify everything before a byte is written.
    const staged = await loadStagedBundle(o.stagingDir, o.keys, {
      board: o.board,
      arch: o.arch ?? hostArch(),
      slotSize,
    });
    const m = staged.manifest;
    checkTarget(m, { board: o.board, arch: o.arch ?? hostArch(), slotSize });
    // 2. Unbootable first.
    await commitFlags(sd, markWriting(sd.flags, passive));
    log.info({ slot: passive, version: m.version, bytes: m.imageSize }, 'writing update to the passive slot');
    // 3. Decompress into the slot, bounded by imageSize, rate-limited if asked.
    const sink = await sinkFor(sd, passive, o.partitionDevice);
    let pos = 0;
    try {
      const started = Date.now();
      let pending: Buffer[] = [];
      let pendingLen = 0;
      const flush = async () => {
        if (pendingLen === 0) return;
        const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLen);
        pending = [];
        pendingLen = 0;
        await sink.write(pos, data);
        pos += data.length;
        o.onProgress?.({ bytes: pos, total: m.imageSize, phase: 'writing' });
        if (o.maxBytesPerSecond && o.maxBytesPerSecond > 0) {
          const due = started + (pos / o.maxBytesPerSecond) * 1000;
          const wait = due - Date.now();
          if (wait > 0) await sleep(wait);
        }
      };
      const writer = new Writable({
        write(chunk: Buffer, _e, cb) {
          if (pos + pendingLen + chunk.length > m.imageSize)
            return cb(
              new FlotillaError(
                'E_UPDATE_VERIFY',
                `update image decompresses to more than the ${m.imageSize} bytes the manifest states`,
              ),
            );
          pending.push(chunk);
          pendingLen += chunk.length;
          if (pendingLen < CHUNK) return cb();
          flush().then(() => cb(), cb);
        },
        final(cb) {
          flush().then(() => cb(), cb);
        },
      });
      await pipeline(createReadStream(staged.payloadPath), decompressor(m.compression), writer);
      await sink.sync();
      if (pos !== m.imageSize)
        throw new FlotillaError(
          'E_UPDATE_VERIFY',
          `update image decompressed to ${pos} bytes, the manifest states ${m.imageSize}`,
        );
      // 4. Hash the slot again.
      const h = createHash('sha256');
      for (let at = 0; at < m.imageSize; at += CHUNK) {
        const len = Math.min(CHUNK, m.imageSize - at);
        const b = await sink.read(at, len);
        if (b.length !== len)
          throw new FlotillaError('E_UPDATE_VERIFY', `short read back from slot ${passive} at ${at}`);
        h.update(b);
        o.onProgress?.({ bytes: at + len, total: m.imageSize, phase: 'verifying' });
      }
      const got = h.digest('hex');
      if (got !== m.imageSha256)
        throw new FlotillaError(
          'E_UPDATE_VERIFY',
          `slot ${passive} does not read back as written: SHA-256 ${got}, expected ${m.imageSha256}`,
        );
    } finally {
      await sink.close();
    }
    // 5. Bootable, as a trial.
    const flags = markInstalled(sd.flags, passive);
    await commitFlags(sd, flags);
    log.info(
      { slot: passive, version: m.version },
      'update written and verified; the slot boots next as a trial',
    );
    return { slot: passive, version: m.version, bytes: pos, flags };
  } finally {
    await sd.disk.close();
  }
}
