/**
 * The ordered map under every table and index: sorted-btree's copy-on-write B+tree
 * (O(1) clone for snapshots). One import point: the package is CommonJS and its class
 * sits at `.default` of the module under NodeNext interop.
 */
import sortedBtree from 'sorted-btree';

export type BTree<K, V> = import('sorted-btree').default<K, V>;

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function newStringTree<V>(): BTree<string, V> {
  return new sortedBtree.default<string, V>(undefined, compareStrings);
}
