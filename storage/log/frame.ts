/**
 * On-disk frame: one transaction.
 *
 *   offset  u64 LE   transaction offset (contiguous: each frame = previous + 1)
 *   length  u32 LE   payload bytes, 0 < length <= frameBytesMax
 *   payload          msgpack TxRecord body (see payload.ts)
 *   crc     u32 LE   CRC32C over header and payload
 *
 * A frame whose CRC does not match was never completely written (torn tail) or was damaged.
 */
import { crc32c } from '@node-rs/crc32';

export const frameHeaderBytes = 12;
export const frameTrailerBytes = 4;
export const frameOverheadBytes = frameHeaderBytes + frameTrailerBytes;
/** A frame larger than this is damage, not data: refuse before allocating. */
export const frameBytesMax = 16 * 1024 * 1024;

export function encodeFrame(offset: number, payload: Uint8Array): Buffer {
  if (!(Number.isSafeInteger(offset) && offset >= 0)) throw new Error(`frame offset ${offset} invalid`);
  if (payload.length === 0 || payload.length > frameBytesMax) {
    throw new RangeError(`frame payload of ${payload.length} bytes outside 1..${frameBytesMax}`);
  }
  const frame = Buffer.allocUnsafe(frameOverheadBytes + payload.length);
  frame.writeBigUInt64LE(BigInt(offset), 0);
  frame.writeUInt32LE(payload.length, 8);
  frame.set(payload, frameHeaderBytes);
  const crc = crc32c(frame.subarray(0, frameHeaderBytes + payload.length));
  frame.writeUInt32LE(crc, frameHeaderBytes + payload.length);
  return frame;
}

export type FrameRead =
  | { readonly ok: true; readonly offset: number; readonly payload: Buffer; readonly bytes: number }
  | { readonly ok: false; readonly reason: string };

/** Decode the frame at `position` of `buf` (a whole segment or a slice holding the frame). */
export function decodeFrame(buf: Buffer, position: number): FrameRead {
  if (buf.length - position < frameHeaderBytes) return { ok: false, reason: 'short frame header' };
  const offsetBig = buf.readBigUInt64LE(position);
  const length = buf.readUInt32LE(position + 8);
  if (length === 0 || length > frameBytesMax) return { ok: false, reason: `frame length ${length} outside 1..${frameBytesMax}` };
  const end = position + frameHeaderBytes + length;
  if (end + frameTrailerBytes > buf.length) return { ok: false, reason: 'frame cut short' };
  const crc = buf.readUInt32LE(end);
  if (crc32c(buf.subarray(position, end)) !== crc) return { ok: false, reason: 'frame checksum mismatch' };
  if (offsetBig > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'frame offset too large' };
  return {
    ok: true,
    offset: Number(offsetBig),
    payload: buf.subarray(position + frameHeaderBytes, end),
    bytes: frameOverheadBytes + length,
  };
}
