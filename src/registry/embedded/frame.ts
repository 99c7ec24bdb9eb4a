/**
 * Log framing. A log segment is an 8-byte file header followed by frames:
 *
 *   frame   = magic u32be 'FKVB' | length u32be | crc32 u32be | payload[length]
 *   payload = (recordLength u32be | record UTF-8 JSON)+
 *   crc32   = CRC-32 (zlib's) over the 4 length bytes then the payload
 *
 * One frame is one group commit: every record queued while the previous fsync was in flight goes
 * into one frame, written with one write() and made durable with one fdatasync(). A frame is valid
 * as a whole or not at all, which is what makes the recovery rule sound: frame k+1 is only written
 * after frame k was fsynced, so the only frame a crash can leave half-written (or, after a power cut,
 * with pages persisted out of order) is the LAST one, and it was never acknowledged. An invalid
 * frame followed by a valid one therefore means damage to acknowledged data, not a torn write.
 */
import { crc32 } from 'node:zlib';

export const SEGMENT_MAGIC = Buffer.from('FLKVWAL1', 'latin1');
export const SEGMENT_HEADER = SEGMENT_MAGIC.length;
export const FRAME_MAGIC = 0x464b5642; // 'FKVB'
export const FRAME_HEADER = 12;
/** No frame is larger than this; a length field above it is damage, not data. */
export const MAX_FRAME = 1 << 30;

const MAGIC_BYTES = Buffer.from([0x46, 0x4b, 0x56, 0x42]);

function frameCrc(buf: Buffer, lenAt: number, payloadAt: number, payloadEnd: number): number {
  return crc32(buf.subarray(payloadAt, payloadEnd), crc32(buf.subarray(lenAt, lenAt + 4)));
}

/** One frame holding `records` (JSON strings), ready to write. */
export function encodeFrame(records: readonly string[]): Buffer {
  let size = FRAME_HEADER;
  const lens = new Array<number>(records.length);
  for (let i = 0; i < records.length; i++) {
    const n = Buffer.byteLength(records[i]!, 'utf8');
    lens[i] = n;
    size += 4 + n;
  }
  const buf = Buffer.allocUnsafe(size);
  let off = FRAME_HEADER;
  for (let i = 0; i < records.length; i++) {
    buf.writeUInt32BE(lens[i]!, off);
    off += 4;
    off += buf.write(records[i]!, off, 'utf8');
  }
  buf.writeUInt32BE(FRAME_MAGIC, 0);
  buf.writeUInt32BE(size - FRAME_HEADER, 4);
  buf.writeUInt32BE(frameCrc(buf, 4, FRAME_HEADER, size), 8);
  return buf;
}

/** The end offset of a valid frame starting at `off`, or -1 when there is none. */
export function validFrameAt(buf: Buffer, off: number): number {
  if (buf.length - off < FRAME_HEADER) return -1;
  if (buf.readUInt32BE(off) !== FRAME_MAGIC) return -1;
  const len = buf.readUInt32BE(off + 4);
  if (len > MAX_FRAME || len > buf.length - off - FRAME_HEADER) return -1;
  const end = off + FRAME_HEADER + len;
  return frameCrc(buf, off + 4, off + FRAME_HEADER, end) === buf.readUInt32BE(off + 8) >>> 0 ? end : -1;
}

/** Split a valid frame's payload into its record strings; undefined if the inner lengths don't add up. */
export function frameRecords(buf: Buffer, off: number, end: number): string[] | undefined {
  const out: string[] = [];
  let p = off + FRAME_HEADER;
  while (p < end) {
    if (end - p < 4) return undefined;
    const n = buf.readUInt32BE(p);
    p += 4;
    if (n > end - p) return undefined;
    out.push(buf.toString('utf8', p, p + n));
    p += n;
  }
  return out;
}

/** Offset of the first valid frame after `off`, or -1. Used to tell a torn tail from corruption. */
export function findValidFrameAfter(buf: Buffer, off: number): number {
  let p = buf.indexOf(MAGIC_BYTES, off + 1);
  while (p >= 0) {
    if (validFrameAt(buf, p) >= 0) return p;
    p = buf.indexOf(MAGIC_BYTES, p + 1);
  }
  return -1;
}
