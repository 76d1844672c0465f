/**
 * The ordered map under every table and index: sorted-btree's copy-on-write B+tree
 * (O(1) clone for snapshots). One import point: the package is CommonJS and its class
 * sits at `.default` of the module under NodeNext interop.
 */
import sortedBtree from 'sorted-btree';

export type BTree<K, V> = import('sorted-btree').default<K, V>;

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

// Node's CJS interop hands us module.exports (class at .default); bundlers (vitest) the class.
const BTreeClass = (typeof sortedBtree === 'function' ? sortedBtree : sortedBtree.default) as typeof sortedBtree.default;

export function newStringTree<V>(): BTree<string, V> {
  return new BTreeClass<string, V>(undefined, compareStrings);
}
