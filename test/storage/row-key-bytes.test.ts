/**
 * Keys read straight from a row's bytes (encodedRowKey, with its one-string-key fast path)
 * equal the keys encodeKey makes from the decoded values: replay and commits must file a row
 * under the same key.
 */
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { encodeKey } from '../../storage/key-codec.js';
import { encodedRowKey, packr } from '../../storage/row-codec.js';
import type { TableSchema, Value } from '../../storage/schema.js';

const oneStringKey: TableSchema = {
  name: 't',
  columns: [{ name: 'id', type: 'string' }, { name: 'n', type: 'int' }],
  primaryKey: ['id'],
};
const twoColumnKey: TableSchema = { ...oneStringKey, primaryKey: ['n', 'id'] };

function keyOfBytes(schema: TableSchema, columns: number[], fields: unknown[]): string {
  const bytes = packr.pack(fields);
  return encodedRowKey(schema, columns, new Array<Value>(columns.length).fill(null), bytes, 0, bytes.length);
}

test('a one-string key read from the bytes equals encodeKey of the string (ASCII, NUL, non-ASCII, long)', () => {
  for (const s of ['', 'a', 'bulk-123', 'x'.repeat(31), 'y'.repeat(32), 'z'.repeat(252), 'w'.repeat(300), 'é', 'a\u0000b', '\u007f']) {
    expect(keyOfBytes(oneStringKey, [0], [s, 1])).toBe(encodeKey([s]));
  }
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.integer(), (s, n) => {
    expect(keyOfBytes(oneStringKey, [0], [s, n])).toBe(encodeKey([s]));
  }));
});

test('keys of other shapes (two columns, integer first) read from the bytes equal encodeKey', () => {
  fc.assert(fc.property(fc.string({ maxLength: 40 }), fc.integer(), (s, n) => {
    expect(keyOfBytes(twoColumnKey, [1, 0], [s, n])).toBe(encodeKey([n, s]));
  }));
});

const anyKeyValue = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('a', 'Z', '-', '\u0000', '\u007f'), maxLength: 1100 }), // NUL, and keys past the byte path's 1,024 bytes
  fc.integer({ min: -200, max: 300 }),
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
  fc.maxSafeInteger(),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 31) - 1),
  fc.boolean(),
  fc.constant(null),
);

test('keys of any shape and column order read from the bytes, with and without a suffix, equal encodeKey of the values', () => {
  // Every msgpack form of a key value (fixint, 8-32 bit integers both signs, float64 integers, all string
  // headers, nil, booleans) against the decoded path; the suffix is an index entry's primary key.
  fc.assert(fc.property(fc.array(anyKeyValue, { minLength: 1, maxLength: 4 }), fc.string({ unit: 'binary', maxLength: 20 }), (values, id) => {
    const schema: TableSchema = {
      name: 't',
      columns: [{ name: 'pad', type: 'string' }, ...values.map((_, i) => ({ name: `c${i}`, type: 'json' as const }))],
      primaryKey: ['pad'],
    };
    const fields = ['x', ...values];
    const keyColumns = values.map((_, i) => i + 1).reverse(); // key order is not column order
    const expected = encodeKey([...values].reverse());
    const suffix = encodeKey([id]);
    const bytes = packr.pack(fields);
    const parts = new Array<Value>(keyColumns.length).fill(null);
    expect(encodedRowKey(schema, keyColumns, parts, bytes, 0, bytes.length)).toBe(expected);
    expect(encodedRowKey(schema, keyColumns, parts, bytes, 0, bytes.length, suffix)).toBe(expected + suffix);
  }), { numRuns: 2000 });
});

test('a key value that is no safe integer is refused from the bytes as from the values', () => {
  for (const bad of [1.5, 2 ** 53, -(2 ** 60)]) {
    expect(() => keyOfBytes(twoColumnKey, [1, 0], ['a', bad])).toThrow(/not a safe integer/);
    expect(() => encodeKey([bad, 'a'])).toThrow(/not a safe integer/);
  }
});
