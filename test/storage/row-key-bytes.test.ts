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
