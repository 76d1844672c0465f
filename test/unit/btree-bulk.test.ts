import { describe, expect, test } from 'vitest';
import { firstUnsortedIndex, newStringTree, stringTreeFromSorted } from '../../storage/btree.js';

describe('trees built from sorted arrays', () => {
  test('hold the same entries as a tree built by inserts, and keep working as a tree', () => {
    for (const n of [0, 1, 31, 32, 33, 1000, 20_000]) {
      const keys = Array.from({ length: n }, (_, i) => `k${String(i).padStart(6, '0')}`);
      const built = stringTreeFromSorted(keys, keys.map((k) => k.length));
      const inserted = newStringTree<number>();
      for (const k of [...keys].reverse()) inserted.set(k, k.length);
      expect([...built.entries()]).toEqual([...inserted.entries()]);
      expect(built.size).toBe(n);
      built.set('k', 0);
      built.delete(keys[0] ?? 'none');
      const copy = built.clone();
      copy.set('zz', 1);
      expect(built.has('zz')).toBe(false);
      expect(built.minKey()).toBe('k');
    }
  });

  test('refuse keys that do not strictly ascend', () => {
    expect(() => stringTreeFromSorted(['a', 'c', 'b'], [1, 2, 3])).toThrow(/ascending/);
    expect(() => stringTreeFromSorted(['a', 'a'], [1, 2])).toThrow(/ascending/);
    expect(firstUnsortedIndex(['a', 'b', 'b', 'c'])).toBe(2);
    expect(firstUnsortedIndex(['a', 'b', 'c'])).toBe(-1);
  });
});
