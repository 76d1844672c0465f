import { describe, expect, test } from 'vitest';
import { findSlot, newStringTree, newTreeSlot, setAtSlot } from '../../storage/btree.js';
import type { TableSchema } from '../../storage/schema.js';
import { Table } from '../../storage/table.js';

const keyOf = (i: number): string => `k${String(i).padStart(5, '0')}`;

describe('tree slots (a value changed where lookup found it, no second descent)', () => {
  test('findSlot reads what get reads, and a write at the slot keeps the tree\'s own key string', () => {
    const tree = newStringTree<number>();
    for (let i = 0; i < 5_000; i += 2) tree.set(keyOf(i), i);
    const slot = newTreeSlot<number>();
    for (let i = -1; i < 5_001; i++) {
      const probe = `k${String(i).padStart(5, '0')}`; // a new string each time
      expect(findSlot(tree, probe, slot)).toBe(tree.get(probe));
      expect(slot.leaf !== undefined).toBe(i >= 0 && i < 5_000 && i % 2 === 0);
    }
    expect(findSlot(tree, keyOf(42), slot)).toBe(42);
    expect(setAtSlot(slot, keyOf(42), -42)).toBe(true);
    expect(tree.get(keyOf(42))).toBe(-42);
    expect([...tree.keys()].length).toBe(2_500);
    // A slot checked against another key is refused.
    expect(setAtSlot(slot, keyOf(44), 0)).toBe(false);
    expect(findSlot(newStringTree<number>(), 'a', slot)).toBeUndefined();
    expect(slot.leaf).toBeUndefined();
  });

  test('a node shared with a clone is never written in place', () => {
    const tree = newStringTree<number>();
    for (let i = 0; i < 3_000; i++) tree.set(keyOf(i), i);
    const clone = tree.clone();
    const slot = newTreeSlot<number>();
    expect(findSlot(tree, keyOf(7), slot)).toBe(7);
    expect(slot.leaf).toBeUndefined(); // the whole tree is shared right after clone()
    tree.set(keyOf(7), 70); // copies the path to key 7 (the rest stays shared)
    expect(findSlot(tree, keyOf(7), slot)).toBe(70);
    expect(setAtSlot(slot, keyOf(7), 700)).toBe(true);
    expect(findSlot(tree, keyOf(2_999), slot)).toBe(2_999);
    expect(slot.leaf).toBeUndefined(); // another leaf, still shared
    expect(clone.get(keyOf(7))).toBe(7);
    expect(tree.get(keyOf(7))).toBe(700);
  });
});

describe('Table.replace through the slot of lookup', () => {
  const schema: TableSchema = {
    name: 'notes',
    columns: [{ name: 'id', type: 'string' }, { name: 'n', type: 'int' }],
    primaryKey: ['id'],
    indexes: [{ name: 'by_n', columns: ['n'] }],
  };
  const rowOf = (t: Table, key: string) => t.rowOfStored(t.lookup(key)!);

  test('a stale slot (the tree changed or was cloned since lookup) is not used', () => {
    const t = new Table(schema);
    for (let i = 0; i < 2_000; i++) t.put(t.keyOf({ id: keyOf(i), n: i }), { id: keyOf(i), n: i });
    const a = t.keyOf({ id: keyOf(10), n: 0 });
    const found = t.lookup(a);
    // Inserts in between split the leaf that held `a`: its old slot points at another row now.
    for (let i = 0; i < 64; i++) t.put(t.keyOf({ id: `${keyOf(10)}-${i}`, n: 5_000 + i }), { id: `${keyOf(10)}-${i}`, n: 5_000 + i });
    t.replace(a, { id: keyOf(10), n: 1_010 }, found);
    expect(rowOf(t, a)).toEqual({ id: keyOf(10), n: 1_010 });
    expect(rowOf(t, t.keyOf({ id: `${keyOf(10)}-0`, n: 0 }))).toEqual({ id: `${keyOf(10)}-0`, n: 5_000 });

    const b = t.keyOf({ id: keyOf(20), n: 0 });
    const foundB = t.lookup(b);
    const clone = t.cloneRows();
    t.replace(b, { id: keyOf(20), n: 2_020 }, foundB);
    expect(rowOf(t, b)).toEqual({ id: keyOf(20), n: 2_020 });
    expect(t.rowOfStored(clone.get(b)!)).toEqual({ id: keyOf(20), n: 20 });
    expect(t.size).toBe(2_064);
  });

  test('lookup then replace changes just that row, and its index entries', () => {
    const t = new Table(schema);
    for (let i = 0; i < 500; i++) t.put(t.keyOf({ id: keyOf(i), n: i }), { id: keyOf(i), n: i });
    for (let i = 0; i < 500; i += 3) {
      const key = t.keyOf({ id: keyOf(i), n: 0 });
      t.replace(key, { id: keyOf(i), n: i + 10_000 }, t.lookup(key));
    }
    for (let i = 0; i < 500; i++) expect(rowOf(t, t.keyOf({ id: keyOf(i), n: 0 })).n).toBe(i % 3 === 0 ? i + 10_000 : i);
    const byN = [...t.scan({ index: 'by_n' })].map((r) => r.n as number);
    expect(byN.filter((n) => n >= 10_000)).toEqual(Array.from({ length: 167 }, (_, k) => 3 * k + 10_000));
    expect(byN.length).toBe(500);
  });
});
