/**
 * Property: whatever inserts, upserts and deletes a transaction makes (and whether it commits or
 * rolls back), every secondary index holds exactly one entry per row, under the row's current
 * index key. An update that leaves the indexed columns alone keeps its entry in place
 * (Table.replace skips the delete and re-insert); one that changes them moves it.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Row, TableSchema } from '../../storage/schema.js';
import { Table } from '../../storage/table.js';
import { Transaction } from '../../storage/transaction.js';

const things: TableSchema = {
  name: 'things',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'kind', type: 'string' },
    { name: 'code', type: 'int' },
    { name: 'note', type: 'string' },
  ],
  primaryKey: ['id'],
  indexes: [
    { name: 'by_kind', columns: ['kind'] },
    { name: 'by_code', columns: ['code'], unique: true },
  ],
};
const caller = { tenant: 't', subject: 's' };

type Op =
  | { kind: 'upsert' | 'insert'; id: string; thingKind: string; code: number; note: string }
  | { kind: 'delete'; id: string };

const ids = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constantFrom('upsert' as const, 'insert' as const),
      id: ids,
      thingKind: fc.constantFrom('x', 'y'),
      code: fc.integer({ min: 0, max: 7 }),
      note: fc.constantFrom('', 'n1', 'n2'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), id: ids }) },
);

/** Every index scanned in full must list exactly the rows, in the index's order. */
function expectIndexesMatch(table: Table): void {
  const rows = [...table.scan()];
  const byKind = [...table.scan({ index: 'by_kind' })].map((r) => r['id']);
  const expectedByKind = [...rows].sort((p, q) => cmp(p['kind'], q['kind']) || cmp(p['id'], q['id'])).map((r) => r['id']);
  expect(byKind).toEqual(expectedByKind);
  const byCode = [...table.scan({ index: 'by_code' })].map((r) => r['id']);
  expect(byCode).toEqual([...rows].sort((p, q) => cmp(p['code'], q['code'])).map((r) => r['id']));
  for (const row of rows) expect(table.getBy('by_code', [row['code']!])).toEqual(row);
  for (const kind of ['x', 'y']) {
    expect([...table.scan({ index: 'by_kind', prefix: [kind] })].map((r) => r['id'])).toEqual(rows.filter((r) => r['kind'] === kind).map((r) => r['id']));
  }
}

function cmp(a: unknown, b: unknown): number {
  return (a as number | string) < (b as number | string) ? -1 : (a as number | string) > (b as number | string) ? 1 : 0;
}

describe('secondary indexes under updates', () => {
  test('each index holds one entry per row under its current key, after commit and after rollback', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.array(op, { minLength: 1, maxLength: 6 }), fc.boolean()), { minLength: 1, maxLength: 12 }), (transactions) => {
        const table = new Table(things);
        const tables = new Map([[things.name, table]]);
        for (const [ops, commit] of transactions) {
          const before: Row[] = [...table.scan()];
          const tx = new Transaction(tables, caller, 1_000, 0);
          const t = tx.table('things');
          for (const o of ops) {
            if (o.kind === 'delete') t.delete([o.id]);
            else {
              const rowsBefore = [...table.scan()];
              try {
                t[o.kind]({ id: o.id, kind: o.thingKind, code: o.code, note: o.note });
              } catch (e) {
                // Another row holds that code, or (insert) that id: refused before anything changed.
                expect(String(e)).toMatch(o.kind === 'insert' ? /unique index by_code|key already exists/ : /unique index by_code/);
                expect([...table.scan()]).toEqual(rowsBefore);
              }
            }
            expectIndexesMatch(table);
          }
          if (!commit) {
            tx.rollback();
            expect([...table.scan()]).toEqual(before);
          }
          expectIndexesMatch(table);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('an update keeping the indexed columns leaves the entry; changing them moves it', () => {
    const table = new Table(things);
    const tx = new Transaction(new Map([[things.name, table]]), caller, 1_000, 0);
    const t = tx.table('things');
    t.insert({ id: 'a', kind: 'x', code: 1, note: '' });
    t.upsert({ id: 'a', kind: 'x', code: 1, note: 'changed' });
    expect([...table.scan({ index: 'by_kind', prefix: ['x'] })]).toEqual([{ id: 'a', kind: 'x', code: 1, note: 'changed' }]);
    t.upsert({ id: 'a', kind: 'y', code: 2, note: 'moved' });
    expect([...table.scan({ index: 'by_kind', prefix: ['x'] })]).toEqual([]);
    expect([...table.scan({ index: 'by_kind', prefix: ['y'] })].map((r) => r['note'])).toEqual(['moved']);
    expect(table.getBy('by_code', [1])).toBeUndefined();
    expect(table.getBy('by_code', [2])?.['note']).toBe('moved');
    // The old code is free again for another row.
    t.insert({ id: 'b', kind: 'x', code: 1, note: '' });
    expect(table.getBy('by_code', [1])?.['id']).toBe('b');
  });
});
