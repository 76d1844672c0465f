/**
 * A segment file: a header then frames. Named by the offset of its first frame, 20 digits,
 * so names sort in log order: `00000000000000000042.log`.
 *
 *   magic         8 bytes  "IOBXLOG\0"
 *   version       u16 LE   segmentFormatVersion
 *   checksum id   u16 LE   1 = CRC32C
 *   first offset  u64 LE
 *   header crc    u32 LE   CRC32C of the 20 bytes above
 */
import { crc32cOf } from './crc32c.js';

export const segmentMagic = Buffer.from('IOBXLOG\0', 'latin1');
export const segmentFormatVersion = 1;
export const checksumIdCrc32c = 1;
export const segmentHeaderBytes = 24;
/** Rotate to a new segment once the current one passes this size. */
export const segmentBytesTarget = 64 * 1024 * 1024;
/** The largest rotation size a store may be given (StoreOptions.segmentBytesMax). */
export const segmentBytesMaxLimit = 512 * 1024 * 1024;
/**
 * A segment file larger than this is not one the engine wrote: a segment passes its rotation
 * size by at most one write (a batch or one frame, 16 MiB at most) and zeros ahead (1 MiB). A
 * larger file named like a segment is damage, refused before it is read (it is read whole).
 */
export const segmentFileBytesMax = 2 * segmentBytesMaxLimit;
const segmentNamePattern = /^(\d{20})\.log$/;

export function segmentFileName(firstOffset: number): string {
  return `${String(firstOffset).padStart(20, '0')}.log`;
}

export function parseSegmentFileName(name: string): number | undefined {
  const m = segmentNamePattern.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function encodeSegmentHeader(firstOffset: number): Buffer {
  const header = Buffer.alloc(segmentHeaderBytes);
  segmentMagic.copy(header, 0);
  header.writeUInt16LE(segmentFormatVersion, 8);
  header.writeUInt16LE(checksumIdCrc32c, 10);
  header.writeBigUInt64LE(BigInt(firstOffset), 12);
  header.writeUInt32LE(crc32cOf(header, 0, 20), 20);
  return header;
}

export type SegmentHeaderRead = { ok: true; firstOffset: number } | { ok: false; reason: string };

export function decodeSegmentHeader(buf: Buffer): SegmentHeaderRead {
  if (buf.length < segmentHeaderBytes) return { ok: false, reason: 'short segment header' };
  if (!buf.subarray(0, 8).equals(segmentMagic)) return { ok: false, reason: 'bad segment magic' };
  if (crc32cOf(buf, 0, 20) !== buf.readUInt32LE(20)) return { ok: false, reason: 'segment header checksum mismatch' };
  const version = buf.readUInt16LE(8);
  if (version !== segmentFormatVersion) return { ok: false, reason: `segment format version ${version} unsupported` };
  const checksumId = buf.readUInt16LE(10);
  if (checksumId !== checksumIdCrc32c) return { ok: false, reason: `checksum id ${checksumId} unsupported` };
  return { ok: true, firstOffset: Number(buf.readBigUInt64LE(12)) };
}
