/**
 * The ordered map under every table and index: sorted-btree's copy-on-write B+tree
 * (O(1) clone for snapshots). One import point: the package is CommonJS and its class
 * sits at `.default` of the module under NodeNext interop.
 */
import sortedBtree from 'sorted-btree';
import { bulkLoad } from 'sorted-btree/extended/bulkLoad.js';

export type BTree<K, V> = import('sorted-btree').default<K, V>;

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
/** Branching factor of every tree (sorted-btree's default): trees built either way look alike. */
const treeNodeSize = 32;

// Node's CJS interop hands us module.exports (class at .default); bundlers (vitest) the class.
const BTreeClass = (typeof sortedBtree === 'function' ? sortedBtree : sortedBtree.default) as typeof sortedBtree.default;

export function newStringTree<V>(): BTree<string, V> {
  return new BTreeClass<string, V>(undefined, compareStrings, treeNodeSize);
}

/**
 * A tree built in O(n) from keys in strictly ascending order (leaves filled in one pass, no
 * per-key descent). The caller proves the order; sorted-btree checks it again and throws.
 */
export function stringTreeFromSorted<V>(keys: string[], values: V[]): BTree<string, V> {
  if (keys.length !== values.length) throw new Error(`stringTreeFromSorted: ${keys.length} keys, ${values.length} values`);
  if (keys.length === 0) return newStringTree<V>();
  return bulkLoad<string, V>(keys, values, treeNodeSize, compareStrings);
}

/** Index of the first key not strictly above its predecessor, or -1 when `keys` ascends strictly. */
export function firstUnsortedIndex(keys: readonly string[]): number {
  for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]! < keys[i]!)) return i;
  return -1;
}
