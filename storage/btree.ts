/**
 * The ordered map under every table and index: sorted-btree's copy-on-write B+tree
 * (O(1) clone for snapshots). One import point: the package is CommonJS and its class
 * sits at `.default` of the module under NodeNext interop.
 */
import sortedBtree from 'sorted-btree';
import { bulkLoad } from 'sorted-btree/extended/bulkLoad.js';
import type { LoopSlices } from './io/event-loop.js';

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

/** What a forRangeStoppable callback returns to stop the walk. */
export const stop = { break: true } as const;

/** sorted-btree's forRange, whose callback may stop the walk with {break} (its typings leave that out; forEachPair relies on it). */
export function forRangeStoppable<V>(tree: BTree<string, V>, low: string, high: string, onFound: (key: string, value: V) => typeof stop | undefined): void {
  (tree.forRange as (low: string, high: string, includeHigh: boolean, onFound: (k: string, v: V) => typeof stop | undefined) => unknown).call(tree, low, high, true, onFound);
}

/**
 * Every pair in key order, with a turn of the event loop whenever `slices` say so: the walk stops
 * after a key and resumes past it. Nothing may change the tree meanwhile.
 */
export async function forEachPairInSlices<V>(tree: BTree<string, V>, slices: LoopSlices, onPair: (key: string, value: V) => void): Promise<void> {
  const last = tree.maxKey();
  let from = tree.minKey();
  let skip: string | undefined;
  let visited = 0;
  while (from !== undefined && last !== undefined) {
    let stoppedAt: string | undefined;
    forRangeStoppable(tree, from, last, (key, value) => {
      if (key === skip) return undefined;
      onPair(key, value);
      if (!slices.due(++visited)) return undefined;
      stoppedAt = key;
      return stop;
    });
    if (stoppedAt === undefined) return;
    await slices.turn();
    from = skip = stoppedAt;
  }
}

/** Index of the first key not strictly above its predecessor, or -1 when `keys` ascends strictly. */
export function firstUnsortedIndex(keys: readonly string[]): number {
  for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]! < keys[i]!)) return i;
  return -1;
}

/**
 * sorted-btree's node shape (its own fields, read here only): a leaf holds keys and values; an
 * internal node holds its children and each child's greatest key. `isShared` marks a node a
 * clone still uses (copy-on-write): nothing below it may be written in place.
 */
interface TreeNode<V> {
  readonly keys: string[];
  readonly values: V[];
  readonly children?: TreeNode<V>[];
  readonly isShared?: boolean;
}

/** Where findSlot found a key: its leaf and index (leaf undefined: not found, or not writable in place). */
export interface TreeSlot<V> {
  leaf: TreeNode<V> | undefined;
  index: number;
}

export function newTreeSlot<V>(): TreeSlot<V> {
  return { leaf: undefined, index: 0 };
}

/** First index whose key is >= key (keys ascend). */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * tree.get(key) that also leaves in `slot` where the value sits, when no node on the way is
 * shared with a clone: setAtSlot then changes that value without a second descent. The slot is
 * good only until the tree next changes; the caller keeps track of that.
 */
export function findSlot<V>(tree: BTree<string, V>, key: string, slot: TreeSlot<V>): V | undefined {
  let node = (tree as unknown as { _root: TreeNode<V> })._root;
  let shared = node.isShared === true;
  slot.leaf = undefined;
  while (node.children !== undefined) {
    const i = lowerBound(node.keys, key);
    if (i === node.children.length) return undefined;
    node = node.children[i]!;
    shared ||= node.isShared === true;
  }
  const i = lowerBound(node.keys, key);
  if (i === node.keys.length || node.keys[i] !== key) return undefined;
  // A leaf without its own values array (all undefined) cannot be written in place either.
  if (!shared && i < node.values.length) {
    slot.leaf = node;
    slot.index = i;
  }
  return node.values[i];
}

/** Change the value findSlot found (the key stays the tree's own string). False when the slot is not writable. */
export function setAtSlot<V>(slot: TreeSlot<V>, key: string, value: V): boolean {
  const leaf = slot.leaf;
  if (leaf === undefined || leaf.keys[slot.index] !== key) return false;
  leaf.values[slot.index] = value;
  return true;
}
