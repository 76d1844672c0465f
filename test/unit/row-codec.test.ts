import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { newStringTree } from '../../storage/btree.js';
import { canonicalChunks, canonicalStateHash } from '../../storage/canonical.js';
import type { TableChanges } from '../../storage/changes.js';
import { encodeKey } from '../../storage/key-codec.js';
import { decodeChanges, decodePayload, encodePayload } from '../../storage/log/payload.js';
import { packr, rowToFields } from '../../storage/row-codec.js';
import type { Row, TableSchema } from '../../storage/schema.js';
import { Table } from '../../storage/table.js';

const things: TableSchema = {
  name: 'things',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'n', type: 'int' },
    { name: 'x', type: 'float', nullable: true },
    { name: 'ok', type: 'bool' },
    { name: 'blob', type: 'bytes', nullable: true },
    { name: 'vec', type: 'vector', nullable: true },
    { name: 'doc', type: 'json' },
  ],
  primaryKey: ['id'],
};
const schemas = new Map([[things.name, things]]);
const table = new Table(things);

/** Rows exercising every column type, short and long, ASCII and not. */
function sampleRows(count: number): Row[] {
  return Array.from({ length: count }, (_, i) => table.normalise({
    id: i % 3 === 0 ? `ключ-${i}` : `k${i}`,
    n: i * 1_000_003 - 2 ** 40,
    x: i % 4 === 0 ? null : i / 7,
    ok: i % 2 === 0,
    blob: i % 5 === 0 ? null : new Uint8Array([i % 256, 0, 255]),
    vec: i % 6 === 0 ? null : [i, -0.5, 1e-3],
    doc: { title: `title ${i} `.repeat(i % 9), nested: { list: [1, 'two', null, true, { deep: '😀'.repeat(i % 40) }] } },
  }));
}

describe('row codec', () => {
  test('a payload round trips every column type; the changes alone decode the same', () => {
    const rows = sampleRows(40);
    const changes: TableChanges[] = [{ table: 'things', deletes: rows.slice(0, 5), inserts: rows.slice(5) }];
    const invocation = { reducer: 'r', args: { a: 'é'.repeat(100) }, caller: { tenant: 't', subject: 's' }, timestampMs: 1234, idempotencyKey: 'k-1' };
    const payload = encodePayload(invocation, changes, schemas);
    const record = decodePayload(17, payload, schemas);
    expect(record.invocation).toEqual(invocation);
    expect(record.changes).toEqual(changes);
    expect(decodeChanges(17, payload, schemas)).toEqual(changes);
    expect(record.changes[0]!.inserts[0]!.vec).toBeInstanceOf(Float32Array);
  });

  test('the canonical stream is the same bytes whatever the chunk size, and chunks stay within it unless one row is larger', () => {
    const rows = newStringTree<Row>();
    for (const row of sampleRows(500)) rows.set(encodeKey([row.id as string]), row);
    const big = table.normalise({ id: 'zz-big', n: 1, x: null, ok: true, blob: null, vec: null, doc: { text: 'y'.repeat(300_000) } });
    rows.set(encodeKey(['zz-big']), big);
    const tables = [{ schema: things, rows }];
    // The stream by definition: [name, count], then each row's fields in key order.
    const expected = Buffer.concat([packr.pack(['things', rows.size]), ...[...rows.values()].map((r) => packr.pack(rowToFields(things, r)))]);
    for (const chunkBytes of [1, 100, 4096, 1 << 20]) {
      const chunks = [...canonicalChunks(tables, chunkBytes)];
      expect(Buffer.concat(chunks).equals(expected)).toBe(true);
      for (const chunk of chunks) {
        if (chunk.length > chunkBytes) expect(chunk.length - chunkBytes).toBeLessThanOrEqual(packr.pack(rowToFields(things, big)).length);
      }
    }
    expect(canonicalStateHash(tables)).toBe(createHash('sha256').update(expected).digest('hex'));
  });
});
