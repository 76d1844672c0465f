import { crc32c } from '@node-rs/crc32';
import { describe, expect, test } from 'vitest';
import { checkFrame, decodeFrame, encodeFrame, encodeFrameParts, frameHeaderBytes, frameOffsetAt } from '../../storage/log/frame.js';

describe('frame codec', () => {
  test('offsets round trip across the 32-bit boundary up to the largest safe integer', () => {
    for (const offset of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER]) {
      const frame = encodeFrame(offset, Buffer.from('payload'));
      const read = decodeFrame(frame, 0);
      expect(read).toMatchObject({ ok: true, offset, bytes: frame.length });
      expect(read.ok && read.payload.toString()).toBe('payload');
      expect(checkFrame(frame, 0)).toBe(frame.length);
      expect(frameOffsetAt(frame, 0)).toBe(offset);
    }
  });

  test('frames are found back to back inside a larger buffer', () => {
    const a = encodeFrame(5, Buffer.from('first'));
    const b = encodeFrame(6, Buffer.from('second one'));
    const buf = Buffer.concat([Buffer.alloc(3), a, b]);
    const first = checkFrame(buf, 3);
    expect(first).toBe(a.length);
    expect(decodeFrame(buf, 3 + (first as number))).toMatchObject({ ok: true, offset: 6 });
  });

  test('a flipped bit, a cut tail, a zero length and a short header are each refused with their reason', () => {
    const frame = encodeFrame(9, Buffer.from('some payload'));
    const flipped = Buffer.from(frame);
    flipped[frameHeaderBytes + 2]! ^= 0x10;
    expect(checkFrame(flipped, 0)).toBe('frame checksum mismatch');
    expect(checkFrame(frame.subarray(0, frame.length - 1), 0)).toBe('frame cut short');
    const zero = Buffer.from(frame);
    zero.writeUInt32LE(0, 8);
    expect(checkFrame(zero, 0)).toMatch(/frame length 0/);
    expect(checkFrame(frame.subarray(0, 5), 0)).toBe('short frame header');
    expect(decodeFrame(flipped, 0)).toEqual({ ok: false, reason: 'frame checksum mismatch' });
  });

  test('an offset past the safe integers is refused even when its checksum is right', () => {
    const frame = encodeFrame(1, Buffer.from('x'));
    frame.writeUInt32LE(0x200000, 4); // high word 2^21: offset >= 2^53
    const end = frame.length - 4;
    frame.writeUInt32LE(crc32c(frame.subarray(0, end)), end);
    expect(checkFrame(frame, 0)).toBe('frame offset too large');
  });

  test('a frame built from parts is the frame of their concatenation', () => {
    const parts = [Buffer.from('changes part'), new Uint8Array([0, 1, 2, 255]), Buffer.from('invocation')];
    for (const offset of [0, 7, 2 ** 32 + 3, Number.MAX_SAFE_INTEGER]) {
      const frame = encodeFrameParts(offset, parts);
      expect(frame.equals(encodeFrame(offset, Buffer.concat(parts)))).toBe(true);
      expect(decodeFrame(frame, 0)).toMatchObject({ ok: true, offset, bytes: frame.length });
      expect(crc32c(frame.subarray(0, frame.length - 4))).toBe(frame.readUInt32LE(frame.length - 4));
    }
    expect(() => encodeFrameParts(1, [Buffer.alloc(0)])).toThrow(RangeError);
  });
});
