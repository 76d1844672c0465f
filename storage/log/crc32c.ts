/**
 * CRC32C (Castagnoli) of buf[start, end), from two well-kept implementations, each where it is
 * fastest: SheetJS's pure-JS `crc-32/crc32c` (slicing-by-16 tables) for short ranges, and
 * `@node-rs/crc32` (SSE4.2) for long ones.
 *
 * Why two: most frames are a small transaction of 150-300 bytes, and there the native call's own
 * cost (entering N-API with a fresh Buffer view, ~0.4-1.5 us here) was most of the work: 15 % of
 * the main thread of an open replaying 300,000 frames was crc32c. The JS loop reads the bytes
 * where they are (a Uint8Array view, no Buffer) and is done in ~0.1-0.3 us; past a few hundred
 * bytes the vector instruction wins.
 */
import { createRequire } from 'node:module';
import { crc32c as crc32cNative } from '@node-rs/crc32';

const requireCjs = createRequire(import.meta.url);
const { buf: crc32cJs } = requireCjs('crc-32/crc32c.js') as { buf(data: Uint8Array, seed?: number): number };

/** Ranges shorter than this are summed in JS; longer ones natively. */
export const crc32cNativeBytesMin = 512;

export function crc32cOf(buf: Buffer, start: number, end: number): number {
  if (!(start >= 0 && start <= end && end <= buf.length)) throw new RangeError(`crc32c range ${start}..${end} outside 0..${buf.length}`);
  if (end - start < crc32cNativeBytesMin) return crc32cJs(new Uint8Array(buf.buffer, buf.byteOffset + start, end - start)) >>> 0;
  return crc32cNative(buf.subarray(start, end));
}
