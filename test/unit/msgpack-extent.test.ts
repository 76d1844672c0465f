import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { msgpackValueEnd } from '../../storage/msgpack-extent.js';
import { packr } from '../../storage/row-codec.js';

/** Values of every msgpack family the codec writes: ints of each width, floats, strings and bins of each length class, arrays and maps of each size class. */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.constantFrom(null, true, false, 0, -1, 127, 128, -33, 255, 256, 65_535, 65_536, 2 ** 32, -(2 ** 31) - 1, 2 ** 53 - 1, 0.5, -1.25e300),
    fc.integer(), fc.double({ noNaN: true }),
    fc.string({ maxLength: 40 }), fc.constantFrom('x'.repeat(31), 'y'.repeat(32), 'z'.repeat(256), 'é'.repeat(200)),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  ),
  node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 20 }), fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 20 })),
})).node;

describe('msgpack value extent', () => {
  test('finds the end of any encoded value followed by other bytes, and refuses any cut of it', () => {
    fc.assert(fc.property(value, fc.uint8Array({ maxLength: 8 }), (v, tail) => {
      const encoded = packr.pack(v);
      const buf = Buffer.concat([Buffer.from([0xc0, 0xc0]), encoded, tail]);
      expect(msgpackValueEnd(buf, 2, buf.length)).toBe(2 + encoded.length);
      expect(msgpackValueEnd(buf, 2, 2 + encoded.length - 1)).toBeUndefined();
    }), { numRuns: 200 });
  });

  test('sizes of 16 and 32 bits: long arrays, maps and strings', () => {
    for (const v of [Array.from({ length: 70_000 }, (_, i) => i), Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, [i]])), 's'.repeat(100_000)]) {
      const encoded = packr.pack(v);
      expect(msgpackValueEnd(encoded, 0, encoded.length)).toBe(encoded.length);
    }
  });

  test('a header that claims more than the bytes hold is refused, not walked past the end', () => {
    expect(msgpackValueEnd(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]), 0, 6)).toBeUndefined();
    expect(msgpackValueEnd(Buffer.from([0xdb, 0x00]), 0, 2)).toBeUndefined();
    expect(msgpackValueEnd(Buffer.from([]), 0, 0)).toBeUndefined();
  });
});
