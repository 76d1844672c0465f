/**
 * The ordered map under every table and index: sorted-btree's copy-on-write B+tree
 * (O(1) clone for snapshots). One import point: the package is CommonJS and its class
 * sits at `.default` of the module under NodeNext interop.
 */
import sortedBtree from 'sorted-btree';
import * as treeModule from 'sorted-btree/b+tree.js';
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
 * Fill of the nodes a bulk load builds (sorted-btree's bulkLoad default): room for inserts
 * before the first splits, and every node above half full.
 */
const bulkLoadFill = 0.8;

/**
 * sorted-btree's node classes, which its typings leave out (the module exports them): a bulk
 * load builds the tree from the library's own nodes, so the library's methods maintain it.
 */
interface LoadedNode {
  readonly keys: string[];
  readonly children?: LoadedNode[];
  /** Moves the left sibling's last child (or pair) to the front of this node. */
  takeFromLeft(left: LoadedNode): void;
}
const { BNode, BNodeInternal, sumChildSizes } = treeModule as unknown as {
  BNode: new (keys: string[], values: unknown[]) => LoadedNode;
  BNodeInternal: new (children: LoadedNode[], size: number) => LoadedNode;
  sumChildSizes(nodes: readonly LoadedNode[]): number;
};

/** A bulk load was given keys out of order or repeated: `index` is the first key not above its predecessor. */
export class KeysNotAscending extends Error {
  constructor(readonly index: number) {
    super(`stringTreeFromSortedInSlices: keys must be sorted in strictly ascending order (key ${index} is not)`);
  }
}

/**
 * A tree built in O(n) from keys in strictly ascending order: leaves filled in one pass, then
 * each level of internal nodes above them, no per-key descent. The same tree as sorted-btree's
 * bulkLoad (same fill, same node shapes, same balancing of the last node of a level), built in
 * slices with turns of the event loop between them (a 1M-key load held it 60-150 ms in one
 * piece, most of that young-generation GC of the new leaves). The caller proves the order; it
 * is checked again here and a key out of order throws.
 */
export async function stringTreeFromSortedInSlices<V>(keys: string[], values: V[], slices: LoopSlices): Promise<BTree<string, V>> {
  if (keys.length !== values.length) throw new Error(`stringTreeFromSortedInSlices: ${keys.length} keys, ${values.length} values`);
  const tree = newStringTree<V>();
  if (keys.length === 0) return tree;
  const unsorted = await firstUnsortedIndexInSlices(keys, slices);
  if (unsorted >= 0) throw new KeysNotAscending(unsorted);
  let built = 0;
  let nodes = new Array<LoadedNode>();
  // Leaves: as many as the fill asks for, evenly sized; one leaf (maybe underfull) when all fit in one.
  const pairs = keys.length;
  const nodeFill = Math.ceil(treeNodeSize * bulkLoadFill);
  let leavesLeft = pairs <= treeNodeSize ? 1 : Math.ceil(pairs / nodeFill);
  for (let from = 0; leavesLeft > 0; leavesLeft--) {
    const to = from + Math.ceil((pairs - from) / leavesLeft);
    nodes.push(new BNode(keys.slice(from, to), values.slice(from, to)));
    from = to;
    if (slices.due(++built)) await slices.turn();
  }
  // Internal levels, up to a root that holds all of the level below it.
  const halfFill = nodeFill === treeNodeSize / 2;
  const childrenMin = Math.floor(treeNodeSize / 2);
  while (nodes.length > 1) {
    const count = nodes.length;
    if (count <= treeNodeSize && (count !== treeNodeSize || !halfFill)) {
      nodes = [new BNodeInternal(nodes, sumChildSizes(nodes))];
      break;
    }
    const parents = new Array<LoadedNode>(Math.ceil(count / nodeFill));
    for (let p = 0, child = 0; p < parents.length; p++) {
      const children = nodes.slice(child, child + Math.ceil((count - child) / (parents.length - p)));
      child += children.length;
      parents[p] = new BNodeInternal(children, sumChildSizes(children));
      if (slices.due(++built)) await slices.turn();
    }
    // An underfull last node takes children from its left sibling (bulkLoad's rule; at this node
    // size and fill the even split already leaves every node at least half full).
    const last = parents[parents.length - 1]!;
    const beforeLast = parents[parents.length - 2]!;
    while (last.children!.length < childrenMin) last.takeFromLeft(beforeLast);
    nodes = parents;
  }
  (tree as unknown as { _root: LoadedNode })._root = nodes[0]!;
  return tree;
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

/** Index of the first key not strictly above its predecessor, or -1 when `keys` ascends strictly; a turn of the event loop whenever `slices` say so. */
export async function firstUnsortedIndexInSlices(keys: readonly string[], slices: LoopSlices): Promise<number> {
  for (let i = 1; i < keys.length; i++) {
    if (!(keys[i - 1]! < keys[i]!)) return i;
    if (slices.due(i)) await slices.turn();
  }
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
