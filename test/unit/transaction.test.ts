import { describe, expect, test, vi } from 'vitest';
import type { TableSchema } from '../../storage/schema.js';
import { Table } from '../../storage/table.js';
import { payloadOfFrame } from '../../storage/log/frame.js';
import { decodeChanges, encodeStoredFrame } from '../../storage/log/payload.js';
import { fromTableChanges, Transaction } from '../../storage/transaction.js';

const items: TableSchema = {
  name: 'items',
  columns: [{ name: 'id', type: 'string' }, { name: 'n', type: 'int' }],
  primaryKey: ['id'],
  indexes: [{ name: 'by_n', columns: ['n'] }],
};
const notes: TableSchema = { name: 'notes', columns: [{ name: 'id', type: 'int' }, { name: 'text', type: 'string' }], primaryKey: ['id'] };
const caller = { tenant: 't', subject: 's' };

function tablesWith(seed: (t: Map<string, Table>) => void = () => undefined): Map<string, Table> {
  const tables = new Map([[items.name, new Table(items)], [notes.name, new Table(notes)]]);
  seed(tables);
  return tables;
}

function snapshotOf(tables: Map<string, Table>): Record<string, unknown[]> {
  return Object.fromEntries([...tables].map(([name, t]) => [name, [...t.scan()]]));
}

describe('transaction', () => {
  test('net changes come out tables by name, keys in order, with first old and last new row per key', () => {
    const tables = tablesWith();
    const tx = new Transaction(tables, caller, 1_000, 0);
    // More keys than a linear scan covers, touched out of order and twice each.
    for (let i = 19; i >= 0; i--) tx.table('notes').insert({ id: i, text: `v1-${i}` });
    for (let i = 0; i < 20; i++) tx.table('notes').update({ id: i, text: `v2-${i}` });
    tx.table('items').insert({ id: 'b', n: 2 });
    tx.table('items').insert({ id: 'a', n: 1 });
    const net = tx.netChanges();
    expect(net.map((t) => t.table)).toEqual(['items', 'notes']);
    expect(net[0]!.keyChanges.map((c) => c.row?.id)).toEqual(['a', 'b']);
    expect(net[1]!.keyChanges.map((c) => c.row?.id)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(net[1]!.keyChanges.every((c) => c.old === undefined && c.row?.text === `v2-${String(c.row?.id)}`)).toBe(true);
  });

  test('a row inserted then deleted in one transaction leaves no change', () => {
    const tables = tablesWith();
    const tx = new Transaction(tables, caller, 1_000, 0);
    tx.table('items').insert({ id: 'x', n: 1 });
    tx.table('items').delete(['x']);
    expect(tx.netChanges()).toEqual([]);
    expect(tables.get('items')!.size).toBe(0);
  });

  test('read then write of the same key records the row the table held and the last row written', () => {
    const tables = tablesWith((t) => {
      const table = t.get('items')!;
      table.put(table.keyOf({ id: 'a', n: 1 }), Object.freeze({ id: 'a', n: 1 }));
    });
    const tx = new Transaction(tables, caller, 1_000, 0);
    const items = tx.table('items');
    const before = items.get(['a']);
    expect(before).toEqual({ id: 'a', n: 1 });
    items.upsert({ id: 'a', n: 2 });
    // The remembered lookup must follow the writer's own changes.
    expect(() => items.insert({ id: 'a', n: 3 })).toThrow(/already exists/);
    items.delete(['a']);
    expect(() => items.update({ id: 'a', n: 4 })).toThrow(/no row/);
    items.insert({ id: 'a', n: 5 });
    const [change] = tx.netChanges();
    expect(change!.table).toBe('items');
    expect(change!.keyChanges.map(({ old, row }) => ({ old, row }))).toEqual([{ old: { id: 'a', n: 1 }, row: { id: 'a', n: 5 } }]);
  });

  test('net changes read back from the frame are the transaction\'s own: inserts, updates and deletes per key', () => {
    const tables = tablesWith((t) => {
      const table = t.get('items')!;
      for (const id of ['b', 'd', 'f', 'h']) table.put(table.keyOf({ id, n: 0 }), Object.freeze({ id, n: 0 }));
    });
    const tx = new Transaction(tables, caller, 1_000, 0);
    const writer = tx.table('items');
    writer.delete(['b']); // only a delete
    writer.upsert({ id: 'c', n: 3 }); // only an insert, between two deletes
    writer.delete(['d']);
    writer.update({ id: 'f', n: 6 }); // an update
    writer.insert({ id: 'g', n: 7 });
    writer.delete(['h']); // the last key a delete
    tx.table('notes').insert({ id: 1, text: 'x' });
    const net = tx.netChanges();
    const schemas = new Map([...tables].map(([name, t]) => [name, t.schema]));
    const invocation = { reducer: 'r', args: null, caller, timestampMs: 1_000 };
    const frameForm = decodeChanges(0, payloadOfFrame(encodeStoredFrame(0, net, tables, invocation), 0), schemas);
    const readBack = fromTableChanges(frameForm, (table, row) => tables.get(table)!.keyOf(row));
    const plain = (n: typeof net) => n.map(({ table, keyChanges }) => ({ table, keyChanges: keyChanges.map(({ key, old, row }) => ({ key, old, row })) }));
    expect(readBack.map((t) => t.keyChanges.map((c) => `${c.old ? 'old' : '-'}/${c.row ? 'new' : '-'}`))).toEqual([['old/-', '-/new', 'old/-', 'old/new', '-/new', 'old/-'], ['-/new']]);
    expect(plain(readBack)).toEqual(plain(net));
  });

  test('a put of the row just read, or just put, does not encode its key again', () => {
    const tables = tablesWith((t) => t.get('items')!.put('\u0006a\u0000\u0000', { id: 'a', n: 1 }));
    const keyOf = vi.spyOn(tables.get('items')!, 'keyOf');
    const writer = new Transaction(tables, caller, 1_000, 0).table('items');
    writer.upsert({ id: 'a', n: (writer.get(['a'])!.n as number) + 1 });
    writer.update({ id: 'a', n: 3 });
    writer.delete(['a']);
    writer.insert({ id: 'a', n: 4 });
    expect(keyOf).not.toHaveBeenCalled();
    writer.upsert({ id: 'b', n: 5 }); // another key: encoded
    expect(keyOf).toHaveBeenCalledTimes(1);
    expect([...tables.get('items')!.scan()]).toEqual([{ id: 'a', n: 4 }, { id: 'b', n: 5 }]);
  });

  test('a key array the reducer changes after a read does not stand for the key of the next put', () => {
    const tables = tablesWith((t) => t.get('items')!.put('\u0006a\u0000\u0000', { id: 'a', n: 1 }));
    const writer = new Transaction(tables, caller, 1_000, 0).table('items');
    const key = ['a'];
    writer.get(key);
    key[0] = 'b';
    writer.upsert({ id: 'b', n: 2 });
    expect([...tables.get('items')!.scan()]).toEqual([{ id: 'a', n: 1 }, { id: 'b', n: 2 }]);
    // Two values for a one-column key encode another key: no put takes it for the row's.
    expect(writer.get(['a', 'x'])).toBeUndefined();
    writer.upsert({ id: 'a', n: 3 });
    expect([...tables.get('items')!.scan()]).toEqual([{ id: 'a', n: 3 }, { id: 'b', n: 2 }]);
  });

  test('rollback restores every table and index to the state before the reducer ran', () => {
    const tables = tablesWith((t) => {
      const table = t.get('items')!;
      for (let i = 0; i < 5; i++) table.put(table.keyOf({ id: `k${i}`, n: i }), Object.freeze({ id: `k${i}`, n: i }));
    });
    const before = snapshotOf(tables);
    const tx = new Transaction(tables, caller, 1_000, 0);
    for (let i = 0; i < 12; i++) tx.table('items').upsert({ id: `k${i}`, n: 100 + i });
    tx.table('items').delete(['k0']);
    tx.table('notes').insert({ id: 1, text: 'x' });
    tx.rollback();
    expect(snapshotOf(tables)).toEqual(before);
    expect([...tables.get('items')!.scan({ index: 'by_n' })].map((r) => r.n)).toEqual([0, 1, 2, 3, 4]);
  });
});
