import { describe, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { encodeFrameParts, frameBytesMax, payloadOfFrame } from '../../storage/log/frame.js';
import { decodePayload, encodePayloadParts, encodeStoredFrame, type StoredKeyChange, type StoredTableChanges } from '../../storage/log/payload.js';
import { RowArena, type StoredRow } from '../../storage/row-arena.js';
import { packr, rowToFields } from '../../storage/row-codec.js';
import type { Row, TableSchema } from '../../storage/schema.js';
import { Table } from '../../storage/table.js';
import type { TableChanges } from '../../storage/changes.js';

const short: TableSchema = {
  name: 'notes',
  columns: [{ name: 'id', type: 'string' }, { name: 'n', type: 'int' }, { name: 'doc', type: 'json' }, { name: 'vec', type: 'vector', nullable: true }],
  primaryKey: ['id'],
};
// A name of 32 characters or more takes msgpack's str8 header instead of fixstr.
const long: TableSchema = { ...short, name: 'a_table_with_a_name_longer_than_thirty_two' };
const schemas = new Map([[short.name, short], [long.name, long]]);

function rowOf(table: Table, i: number): Row {
  return table.normalise({ id: `k-${String(i).padStart(4, '0')}`, n: i * 7 - 300, doc: { t: 'é'.repeat(i % 5), i }, vec: i % 3 === 0 ? null : [i, 0.5] });
}

/** Net changes of `count` keys: inserts, updates and deletes; stored as arena references except every 4th row (an object: a full arena's fallback). */
function netOf(schema: TableSchema, arena: RowArena, count: number, seed: number): StoredTableChanges {
  const table = new Table(schema);
  const store = (row: Row, i: number): StoredRow => {
    if (i % 4 === 0) return row;
    const bytes = packr.pack(rowToFields(schema, row));
    return arena.copyIn(bytes, 0, bytes.length)!;
  };
  const keyChanges: (StoredKeyChange & { key: string })[] = [];
  for (let i = 0; i < count; i++) {
    const kind = (i + seed) % 3; // 0 insert, 1 update, 2 delete
    const old = kind === 0 ? undefined : rowOf(table, i + 1000);
    const row = kind === 2 ? undefined : rowOf(table, i);
    keyChanges.push({ key: table.keyOf(row ?? old!), old, row, oldStored: old && store(old, i + 1), rowStored: row && store(row, i) });
  }
  return { table: schema.name, keyChanges };
}

/** The frame's form of one table's net changes: its old rows as deletes, its new rows as inserts (changes.ts). */
function frameFormOf({ table, keyChanges }: StoredTableChanges): TableChanges {
  return { table, deletes: keyChanges.flatMap((c) => (c.old ? [c.old] : [])), inserts: keyChanges.flatMap((c) => (c.row ? [c.row] : [])) };
}

describe('the frame written from stored rows', () => {
  const invocations = [
    { reducer: 'r', args: null, caller: { tenant: 't', subject: 's' }, timestampMs: 1 },
    { reducer: 'upsert', args: { id: 'a', attributes: { title: 'é'.repeat(300), n: 1.5, tags: ['x'] } }, caller: { tenant: 't', subject: 's' }, timestampMs: 1_700_000_000_000 },
    { reducer: 'r', args: { a: 1 }, caller: { tenant: 't', subject: 's' }, timestampMs: 2, idempotencyKey: 'key-1' },
  ];

  test('is byte for byte the frame of what the object encoder writes, for references and objects, short and long lists and table names', () => {
    let round = 0;
    for (const [shortRows, longRows] of [[1, 0], [3, 2], [15, 16], [40, 5], [0, 1]] as const) {
      const arenas = new Map([[short.name, new RowArena()], [long.name, new RowArena()]]);
      const net: StoredTableChanges[] = [];
      if (longRows > 0) net.push(netOf(long, arenas.get(long.name)!, longRows, 1));
      if (shortRows > 0) net.push(netOf(short, arenas.get(short.name)!, shortRows, 2));
      const sources = new Map([...schemas].map(([name, schema]) => [name, { schema, arena: arenas.get(name)! }]));
      const changes = net.map(frameFormOf);
      const invocation = invocations[round % invocations.length]!;
      const offset = [1, 2 ** 32 + 3, 9][round++ % 3]!;
      const frame = encodeStoredFrame(offset, net, sources, invocation);
      expect(frame.equals(encodeFrameParts(offset, encodePayloadParts(invocation, changes, schemas)))).toBe(true);
      expect(decodePayload(offset, payloadOfFrame(frame, offset), schemas)).toEqual({ offset, invocation, changes });
    }
  });

  test('refuses a transaction whose payload is larger than a frame may be, before making the frame', () => {
    const arena = new RowArena();
    const net = [netOf(short, arena, 1, 0)];
    const sources = new Map([[short.name, { schema: short, arena }]]);
    const invocation = { reducer: 'r', args: { text: 'x'.repeat(frameBytesMax) }, caller: { tenant: 't', subject: 's' }, timestampMs: 1 };
    let refused: unknown;
    try {
      encodeStoredFrame(1, net, sources, invocation);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(MemoryError);
    expect(refused).toMatchObject({ code: 'limit_exceeded', message: expect.stringMatching(/exceeds the frame limit/) });
  });

  test('refuses a table it has no source for', () => {
    expect(() => encodeStoredFrame(1, [{ table: 'nope', keyChanges: [] }], new Map(), invocations[0]!)).toThrow(/unknown table nope/);
  });
});
