import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { crc32cNativeBytesMin, crc32cOf } from '../../storage/log/crc32c.js';

describe('crc32cOf', () => {
  test('equals the native CRC32C of the same range, for ranges on both sides of the switch and at any offset', () => {
    fc.assert(fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 3 * crc32cNativeBytesMin }), fc.nat(), fc.nat(),
      (bytes, a, b) => {
        // A buffer that is a view into a larger one, as frames in a segment are.
        const backing = Buffer.alloc(bytes.length + 7);
        backing.set(bytes, 3);
        const buf = backing.subarray(3, 3 + bytes.length);
        const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const end = start + (bytes.length - start === 0 ? 0 : b % (bytes.length - start + 1));
        expect(crc32cOf(buf, start, end)).toBe(crc32c(buf.subarray(start, end)));
      },
    ), { numRuns: 500 });
    // The known check value of CRC32C ("123456789" -> 0xe3069283), on both paths.
    const check = Buffer.from('123456789');
    expect(crc32cOf(check, 0, check.length)).toBe(0xe3069283);
    const long = Buffer.concat([Buffer.alloc(crc32cNativeBytesMin), check]);
    expect(crc32cOf(long, 0, long.length)).toBe(crc32c(long));
  });

  test('refuses a range outside the buffer', () => {
    expect(() => crc32cOf(Buffer.alloc(4), 2, 5)).toThrow(RangeError);
    expect(() => crc32cOf(Buffer.alloc(4), 3, 2)).toThrow(RangeError);
  });
});
