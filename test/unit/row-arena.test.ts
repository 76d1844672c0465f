import { describe, expect, test } from 'vitest';
import { newStringTree } from '../../storage/btree.js';
import { createHash } from 'node:crypto';
import { canonicalChunks, canonicalStateHash, canonicalStateHashInSlices, hashSliceBytes, hashRunBytesMin } from '../../storage/canonical.js';
import type { TableChanges } from '../../storage/changes.js';
import { LoopSlices } from '../../storage/io/event-loop.js';
import { decodeChanges, encodePayload, visitChangesAt } from '../../storage/log/payload.js';
import { arenaChunkBytes, RowArena } from '../../storage/row-arena.js';
import { packr, rowToFields } from '../../storage/row-codec.js';
import type { Row, TableSchema } from '../../storage/schema.js';
import { Table } from '../../storage/table.js';

const things: TableSchema = {
  name: 'things',
  columns: [
    { name: 'team', type: 'string' },
    { name: 'n', type: 'int' },
    { name: 'x', type: 'float', nullable: true },
    { name: 'ok', type: 'bool' },
    { name: 'blob', type: 'bytes', nullable: true },
    { name: 'vec', type: 'vector', nullable: true },
    { name: 'doc', type: 'json' },
  ],
  // A composite key: a string column after an int one, ints of every size and sign.
  primaryKey: ['n', 'team'],
  indexes: [{ name: 'by_ok', columns: ['ok', 'team'] }, { name: 'by_n', columns: ['n', 'ok'] }],
};
const schemas = new Map([[things.name, things]]);
const shapes = new Table(things);

/** Rows exercising every column type and key form: ASCII and not, small and large ints, long bodies. */
function sampleRows(count: number): Row[] {
  return Array.from({ length: count }, (_, i) => shapes.normalise({
    team: i % 3 === 0 ? `équipe-${i}` : i % 7 === 0 ? `nul\u0000${i}` : `t${i}`,
    n: [0, 1, 127, 128, -1, -33, 70_000, -70_000, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER][i % 11]! + (i % 11 < 2 ? i : 0),
    x: i % 4 === 0 ? null : i / 7,
    ok: i % 2 === 0,
    blob: i % 5 === 0 ? null : new Uint8Array([i % 256, 0, 255]),
    vec: i % 6 === 0 ? null : [i, -0.5, 1e-3],
    doc: { title: `title ${i} `.repeat(i % 40), nested: [1, 'two', null, true, { deep: '😀'.repeat(i % 9) }] },
  }));
}

function encoded(row: Row): Buffer {
  return packr.pack(rowToFields(things, row));
}

describe('rows kept encoded', () => {
  test('a table fed encoded rows answers reads, scans, index scans and the state hash exactly as one fed row objects', async () => {
    const rows = sampleRows(400);
    const byObjects = new Table(things);
    for (const row of rows) byObjects.put(byObjects.keyOf(row), row);
    const byBytes = new Table(things);
    for (const row of rows) {
      const bytes = encoded(row);
      // Padding around the row: the table must read exactly [start, end).
      const framed = Buffer.concat([Buffer.from([0xc1, 0x93]), bytes, Buffer.from([0xc1])]);
      expect(byBytes.keyOfEncoded(framed, 2, 2 + bytes.length)).toBe(byObjects.keyOf(row));
      expect(byBytes.putNewEncoded(framed, 2, 2 + bytes.length)).toBe(true);
      expect(byBytes.putNewEncoded(framed, 2, 2 + bytes.length)).toBe(false);
    }
    expect(byBytes.size).toBe(byObjects.size);
    expect([...byBytes.rows.values()].every((v) => typeof v === 'number')).toBe(true);
    expect([...byBytes.scan()]).toEqual([...byObjects.scan()]);
    expect([...byBytes.scan({ index: 'by_ok', prefix: [true] })]).toEqual([...byObjects.scan({ index: 'by_ok', prefix: [true] })]);
    expect([...byBytes.scan({ index: 'by_n' })]).toEqual([...byObjects.scan({ index: 'by_n' })]);
    // Indexes built at load from the encoded rows (bool, string and int columns of every size) equal those built from objects.
    const loaded = await Table.load(things, byBytes.rows, byBytes.arena, new LoopSlices());
    for (const index of ['by_ok', 'by_n']) expect([...loaded.scan({ index })]).toEqual([...byObjects.scan({ index })]);
    expect([...loaded.scan({ index: 'by_n', prefix: [-33] })]).toEqual([...byObjects.scan({ index: 'by_n', prefix: [-33] })]);
    for (const row of rows.slice(0, 50)) expect(byBytes.getByKey(byObjects.keyOf(row))).toEqual(row);
    const hashOf = (t: Table) => canonicalStateHash([{ schema: things, rows: t.rows, arena: t.arena }]);
    expect(hashOf(byBytes)).toBe(hashOf(byObjects));
    // Mixed: some rows replaced by objects, some removed, after the encoded load.
    for (const row of rows.slice(0, 100)) {
      const key = byObjects.keyOf(row);
      if (row.ok) {
        expect(byBytes.removeKey(key)).toBe(true);
        byObjects.remove(key);
      } else {
        const changed = shapes.normalise({ ...row, doc: { changed: true } });
        expect(byBytes.getByKey(key)).toEqual(row);
        byBytes.put(key, changed);
        byObjects.put(key, changed);
      }
    }
    expect(hashOf(byBytes)).toBe(hashOf(byObjects));
    expect([...byBytes.scan({ index: 'by_ok' })]).toEqual([...byObjects.scan({ index: 'by_ok' })]);
  });

  test('an adopted buffer larger than one chunk window reads back every row, including one that crosses a window', () => {
    const row = sampleRows(40)[39]!;
    const bytes = encoded(row);
    const buf = Buffer.alloc(arenaChunkBytes + 4096, 0xc0); // nils around the rows
    const crossing = arenaChunkBytes - Math.floor(bytes.length / 2);
    bytes.copy(buf, crossing);
    bytes.copy(buf, 10);
    bytes.copy(buf, arenaChunkBytes + 2048);
    const arena = new RowArena();
    expect(arena.copyIn(bytes, 0, bytes.length)).toBe(0); // a fill chunk before the adoption
    const toRef = arena.adopt(buf)!;
    for (const position of [10, crossing, arenaChunkBytes + 2048]) expect(arena.decode(things, toRef(position))).toEqual(row);
    const copied = arena.copyIn(bytes, 0, bytes.length)!; // lands after the adopted windows
    expect(Math.floor(copied / arenaChunkBytes)).toBe(3);
    expect(arena.decode(things, copied)).toEqual(row);
    expect(arena.decode(things, 0)).toEqual(row);
    expect(() => arena.decode(things, 40 * arenaChunkBytes)).toThrow(/outside its arena/);
  });

  test('replay walks the changes of a payload as the decoder reads them, and never the invocation', () => {
    const rows = sampleRows(30);
    const changes: TableChanges[] = [{ table: 'things', deletes: rows.slice(0, 4), inserts: rows.slice(4) }];
    const payload = encodePayload({ reducer: 'r', args: { a: 1 }, caller: { tenant: 't', subject: 's' }, timestampMs: 5 }, changes, schemas);
    const seen: string[] = [];
    const table = new Table(things);
    visitChangesAt(3, payload, 0, payload.length, {
      table: (name) => seen.push(`table ${name}`),
      deleted: (buf, start, end) => seen.push(`- ${table.keyOfEncoded(buf, start, end)}`),
      inserted: (buf, start, end) => seen.push(`+ ${table.keyOfEncoded(buf, start, end)}`),
    });
    const decoded = decodeChanges(3, payload, schemas)[0]!;
    expect(seen).toEqual(['table things', ...decoded.deletes.map((r) => `- ${table.keyOf(r)}`), ...decoded.inserts.map((r) => `+ ${table.keyOf(r)}`)]);
    const cut = payload.subarray(0, 40);
    expect(() => visitChangesAt(3, cut, 0, cut.length, { table: () => undefined, deleted: () => undefined, inserted: () => undefined })).toThrow(/payload at offset 3/);
  });

  test('a loaded tree of references and its arena hash like the rows they stand for', () => {
    const rows = sampleRows(60);
    const objects = newStringTree<Row>();
    for (const row of rows) objects.set(shapes.keyOf(row), row);
    const arena = new RowArena();
    const refs = newStringTree<number>();
    for (const [key, row] of objects.entries()) {
      const bytes = encoded(row);
      refs.set(key, arena.copyIn(bytes, 0, bytes.length)!);
    }
    expect(canonicalStateHash([{ schema: things, rows: refs, arena }])).toBe(canonicalStateHash([{ schema: things, rows: objects }]));
    expect(() => canonicalStateHash([{ schema: things, rows: refs }])).toThrow(/no arena/);
  });

  test('the state hash is SHA-256 of the canonical stream whether rows lie back to back in the arena, scattered, or as objects', async () => {
    const rows = sampleRows(12_000);
    const byKey = newStringTree<Row>();
    for (const row of rows) byKey.set(shapes.keyOf(row), row);
    const ordered = [...byKey.entries()];
    // In key order: long runs of adjacent rows, hashed where they lie; shuffled: runs of one row, staged.
    const shuffled = ordered.map((entry, i) => ({ entry, rank: (i * 7919) % ordered.length })).sort((a, b) => a.rank - b.rank).map((e) => e.entry);
    const treeOf = (entries: [string, Row][], asObject: (i: number) => boolean) => {
      const arena = new RowArena();
      const tree = newStringTree<number | Row>();
      entries.forEach(([key, row], i) => {
        const bytes = encoded(row);
        tree.set(key, asObject(i) ? row : arena.copyIn(bytes, 0, bytes.length)!);
      });
      return { schema: things, rows: tree, arena };
    };
    const states = [treeOf(ordered, () => false), treeOf(shuffled, () => false), treeOf(ordered, (i) => i % 50 === 0)];
    const stream = Buffer.concat([...canonicalChunks([states[2]!])]);
    expect(stream.length).toBeGreaterThan(hashSliceBytes); // the walk pauses mid-run
    expect(stream.length / rows.length).toBeLessThan(hashRunBytesMin); // a lone row is staged
    const expected = createHash('sha256').update(stream).digest('hex');
    for (const state of states) {
      expect(canonicalStateHash([state])).toBe(expected);
      expect(await canonicalStateHashInSlices([state], new LoopSlices(0))).toBe(expected);
    }
  });
});
