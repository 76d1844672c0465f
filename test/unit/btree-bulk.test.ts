import { bulkLoad } from 'sorted-btree/extended/bulkLoad.js';
import { describe, expect, test } from 'vitest';
import { firstUnsortedIndexInSlices, newStringTree, stringTreeFromSortedInSlices, type BTree } from '../../storage/btree.js';
import { LoopSlices } from '../../storage/io/event-loop.js';

const keysOf = (n: number): string[] => Array.from({ length: n }, (_, i) => `k${String(i).padStart(7, '0')}`);

interface ShapeNode {
  keys: string[];
  children?: ShapeNode[];
  size(): number;
}

/** Each level of the tree, top down: per node whether it is a leaf, its key count and its size. */
function shapeOf(tree: BTree<string, unknown>): string[][] {
  const levels: string[][] = [];
  let level = [(tree as unknown as { _root: ShapeNode })._root];
  while (level.length > 0) {
    levels.push(level.map((node) => `${node.children ? 'internal' : 'leaf'}:${node.keys.length}/${node.size()}`));
    level = level.flatMap((node) => node.children ?? []);
  }
  return levels;
}

/** A small deterministic generator (random operations that repeat run to run). */
function lcg(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
}

describe('trees built from sorted arrays in slices', () => {
  test('are valid, hold exactly the input, have bulkLoad\'s shape, and stay valid through sets, deletes and clones', async () => {
    for (const n of [0, 1, 2, 31, 32, 33, 64, 1000, 100_003]) {
      const keys = keysOf(n);
      const values = keys.map((_, i) => i);
      const slices = new LoopSlices(0); // a turn at every check point
      const built = await stringTreeFromSortedInSlices(keys, values, slices);
      built.checkValid(true);
      expect(built.size, `size of ${n}`).toBe(n);
      expect([...built.keys()], `keys of ${n}`).toEqual(keys);
      expect([...built.values()], `values of ${n}`).toEqual(values);
      if (n > 0) expect(shapeOf(built), `shape of ${n}`).toEqual(shapeOf(bulkLoad(keys, values, 32, (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0))));
      const model = new Map(keys.map((k, i) => [k, i]));
      const random = lcg(n + 1);
      let tree = built;
      for (let op = 0; op < 3000; op++) {
        const key = `k${String(Math.floor(random() * (n + 50))).padStart(7, '0')}${random() < 0.3 ? 'x' : ''}`;
        const roll = random();
        if (roll < 0.45) {
          tree.set(key, op);
          model.set(key, op);
        } else if (roll < 0.9) {
          expect(tree.delete(key)).toBe(model.delete(key));
        } else {
          const copy = tree.clone();
          copy.set('zz', -1); // a write to the clone leaves the original alone
          expect(tree.has('zz')).toBe(false);
          copy.delete('zz');
          if (random() < 0.5) tree = copy; // go on with the clone: both hold the model's entries
        }
      }
      tree.checkValid(true);
      expect([...tree.entries()], `entries of ${n} after the operations`).toEqual([...model.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
    }
  }, 60_000);

  test('refuse keys that do not strictly ascend', async () => {
    await expect(stringTreeFromSortedInSlices(['a', 'c', 'b'], [1, 2, 3], new LoopSlices())).rejects.toThrow(/ascending/);
    await expect(stringTreeFromSortedInSlices(['a', 'a'], [1, 2], new LoopSlices())).rejects.toThrow(/ascending/);
    await expect(stringTreeFromSortedInSlices(['a'], [1, 2], new LoopSlices())).rejects.toThrow(/1 keys, 2 values/);
    expect(await firstUnsortedIndexInSlices(['a', 'b', 'b', 'c'], new LoopSlices())).toBe(2);
    expect(await firstUnsortedIndexInSlices(['a', 'b', 'c'], new LoopSlices())).toBe(-1);
    const late = keysOf(5000);
    late[4000] = late[3999]!;
    expect(await firstUnsortedIndexInSlices(late, new LoopSlices(0))).toBe(4000);
  });

  test('a large load gives the event loop turns while it runs', async () => {
    const keys = keysOf(200_000);
    let otherWork = 0;
    // Work queued before each turn runs only if the loop really turns before the load goes on.
    const slices = new LoopSlices(0, () => setImmediate(() => otherWork++));
    const tree = await stringTreeFromSortedInSlices(keys, keys, slices);
    expect(tree.size).toBe(200_000);
    expect(slices.turns).toBeGreaterThan(0);
    expect(otherWork, 'other work ran at every turn').toBe(slices.turns);
  });
});
