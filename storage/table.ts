/**
 * One in-memory table: rows ordered by encoded primary key in a copy-on-write B+tree (so a
 * snapshot can clone it in O(1) and serialise while commits go on), plus secondary indexes
 * (encoded index key + primary key -> primary key; unique ones keyed by the index key alone).
 * Rows are kept encoded in the table's arena (row-arena.ts) and decoded into a fresh frozen
 * object when read; a change replaces the row's bytes, never mutates them.
 */
import { findSlot, forEachPairInSlices, KeysNotAscending, newStringTree, newTreeSlot, setAtSlot, stringTreeFromSortedInSlices, type BTree } from './btree.js';
import { MemoryError } from './errors.js';
import type { LoopSlices } from './io/event-loop.js';
import { encodeKey, prefixUpperBound } from './key-codec.js';
import type { KeyRange, Page, ScanOptions, TableReader } from './reducer.js';
import { RowArena, rowStart, storedRowValue, type StoredRow } from './row-arena.js';
import { encodedRowKey, fieldsToRow, newRowPackr, packInPlace, primaryKeyColumnIndexes, rowToFields, rowUnpackr } from './row-codec.js';
import { assertSchema, normaliseValue, rowsMaxDefault, type IndexDef, type Row, type TableSchema, type Value } from './schema.js';
import { sortInSlices } from './sort-in-slices.js';

export const pageRowsMax = 10_000;
/**
 * Rows one compaction step walks at least: a short task (~0.1 ms) between commits. A step walks
 * twice the rows put since the last one when that is more, so a walk always outpaces the writes
 * that make new dead bytes meanwhile.
 */
export const compactionStepRowsMin = 256;
/** Indexes whose entry an update may leave in place (bits of a number); any past these are redone. */
const indexesKeptBits = 30;

/** The encoder of rows put into arenas: packs one row and the bytes are copied out at once. */
const rowPackr = newRowPackr();

interface Index {
  /** The table's schema: encoded rows are read through it. */
  readonly schema: TableSchema;
  readonly def: IndexDef;
  readonly columns: readonly string[];
  /** Field positions of `columns`, for index keys read straight from encoded rows. */
  readonly positions: readonly number[];
  /** Scratch for encodedRowKey: filled and encoded, never kept. */
  readonly parts: Value[];
  readonly tree: BTree<string, string>;
}

export class Table implements TableReader {
  readonly rows: BTree<string, StoredRow>;
  /** Where the encoded rows the tree refers to live (shared with clones of the tree, which pin it while they are read). */
  readonly arena: RowArena;
  private readonly indexes = new Map<string, Index>();
  /** The same indexes as a list: the per-put loops walk it without making an iterator. */
  private readonly indexList: readonly Index[];
  private readonly rowsMax: number;
  /** Scratch for keyOf (called per replayed row): filled and encoded, never kept. */
  private readonly keyParts: Value[];
  /** Field positions of the primary-key columns, for keys read straight from encoded rows. */
  private readonly keyColumns: readonly number[];
  /** Scratch for encoding a put row: filled, packed, never kept. */
  private readonly fieldsScratch: unknown[] = [];
  /** `table.column` per column, for error messages: made once, not on every put. */
  private readonly columnLabels: readonly string[];
  /** The declared column names: normalise refuses any other field. */
  private readonly columnNames: ReadonlySet<string>;
  /** The key the running arena compaction visits next (undefined: none runs). */
  private compactFrom: string | undefined;
  /** Rows replaced or removed during the running compaction since its last step. */
  private changesSinceStep = 0;
  /** The edit replace() hands the tree for a key it holds (one object, reused: nothing allocated per update). */
  private readonly valueEdit: { value: StoredRow } = { value: 0 };
  private readonly editValue = (): { value: StoredRow } => this.valueEdit;
  /** Where lookup() last found a key, and `treeChanges` then: replace() of that key writes there, no second descent. */
  private readonly slot = newTreeSlot<StoredRow>();
  private slotChanges = -1;
  /** Changes made to `rows` (and clones taken of it): a slot found before one is stale. */
  private treeChanges = 0;

  /**
   * A table over `rows` (none: an empty one). Rows given need their indexes: `indexTrees` from
   * Table.load, which builds them; without them the rows must be none or the schema index-free.
   */
  constructor(readonly schema: TableSchema, rows?: BTree<string, StoredRow>, arena?: RowArena, indexTrees?: ReadonlyMap<string, BTree<string, string>>) {
    assertSchema(schema);
    this.rows = rows ?? newStringTree<StoredRow>();
    this.arena = arena ?? new RowArena();
    this.keyColumns = primaryKeyColumnIndexes(schema);
    this.rowsMax = schema.rowsMax ?? rowsMaxDefault;
    this.keyParts = new Array<Value>(schema.primaryKey.length).fill(null);
    this.columnLabels = schema.columns.map((c) => `${schema.name}.${c.name}`);
    this.columnNames = new Set(schema.columns.map((c) => c.name));
    for (const def of schema.indexes ?? []) {
      const tree = indexTrees?.get(def.name) ?? newStringTree<string>();
      if (tree.size !== this.rows.size) throw new Error(`${schema.name}: index ${def.name} holds ${tree.size} entries for ${this.rows.size} rows (Table.load builds a loaded table's indexes)`);
      this.indexes.set(def.name, newIndex(schema, def, tree));
    }
    this.indexList = [...this.indexes.values()];
  }

  /**
   * A table over loaded rows (a snapshot's), its indexes built in slices with turns of the event
   * loop between them: for each index every entry is computed, sorted (sort-in-slices.ts) and the
   * tree built from the sorted arrays level by level, instead of one descent per row.
   */
  static async load(schema: TableSchema, rows: BTree<string, StoredRow>, arena: RowArena, slices: LoopSlices): Promise<Table> {
    const trees = new Map<string, BTree<string, string>>();
    for (const def of schema.indexes ?? []) {
      const index = newIndex(schema, def, newStringTree<string>());
      const entryKeys = new Array<string>(rows.size);
      const rowKeys = new Array<string>(rows.size);
      let i = 0;
      await forEachPairInSlices(rows, slices, (key, stored) => {
        entryKeys[i] = storedIndexKey(arena, index, stored, def.unique ? '' : key);
        rowKeys[i++] = key;
      });
      const sorted = await sortInSlices(entryKeys, rowKeys, slices);
      // Rows that break a unique index cannot come from a verified state: refuse, never drop one
      // silently. The build checks the order (sorted, so a repeat is the only way to break it).
      const tree = await stringTreeFromSortedInSlices(sorted.keys, sorted.values, slices).catch((error: unknown) => {
        throw error instanceof KeysNotAscending ? uniqueHeldTwice(schema, def) : error;
      });
      trees.set(def.name, tree);
    }
    return new Table(schema, rows, arena, trees);
  }

  get size(): number {
    return this.rows.size;
  }

  /** At its row bound: a new key is refused. */
  get full(): boolean {
    return this.rows.size >= this.rowsMax;
  }

  keyOf(row: Row): string {
    const parts = this.keyParts;
    for (let i = 0; i < parts.length; i++) parts[i] = row[this.schema.primaryKey[i]!] ?? null;
    return encodeKey(parts);
  }

  /** Validate and normalise a caller-supplied row: every column, no unknown fields. */
  normalise(input: Record<string, unknown>): Row {
    for (const k of Object.keys(input)) {
      if (!this.columnNames.has(k)) {
        throw new MemoryError('invalid_argument', `${this.schema.name} has no column ${k}`);
      }
    }
    const row: Record<string, Value> = {};
    const columns = this.schema.columns;
    for (let i = 0; i < columns.length; i++) {
      const col = columns[i]!;
      row[col.name] = normaliseValue(this.columnLabels[i]!, col, input[col.name]);
    }
    return Object.freeze(row);
  }

  /** The row a stored value stands for (decoded when it is a reference): a fresh frozen object. */
  rowOfStored(stored: StoredRow): Row {
    return storedRowValue(stored, this.schema, this.arena);
  }

  private rowAt(key: string): Row | undefined {
    const stored = this.rows.get(key);
    return stored === undefined ? undefined : this.rowOfStored(stored);
  }

  /** True when some index needs the columns of each row put or removed. */
  get hasIndexes(): boolean {
    return this.indexes.size > 0;
  }

  get(key: readonly Value[]): Row | undefined {
    return this.rowAt(encodeKey(key));
  }

  getByKey(key: string): Row | undefined {
    return this.rowAt(key);
  }

  getBy(indexName: string, key: readonly Value[]): Row | undefined {
    const index = this.index(indexName);
    if (!index.def.unique) throw new MemoryError('invalid_argument', `index ${indexName} is not unique`);
    const pk = index.tree.get(encodeKey(key));
    return pk === undefined ? undefined : this.rowAt(pk);
  }

  /** A copy-on-write clone of the rows (O(1)): the tree's nodes are shared from now on, so no slot found before is writable. */
  cloneRows(): BTree<string, StoredRow> {
    this.treeChanges++;
    return this.rows.clone();
  }

  /** What the tree holds under `key` (one descent): a transaction looks it up once and hands it to checkPut and replace. */
  lookup(key: string): StoredRow | undefined {
    this.slotChanges = this.treeChanges;
    return findSlot(this.rows, key, this.slot);
  }

  /** Check unique indexes and the row bound before a row with `key` is put; `existing` is what lookup(key) gave. */
  checkPut(key: string, row: Row, existing: StoredRow | undefined): void {
    if (existing === undefined && this.full) {
      throw new MemoryError('limit_exceeded', `table ${this.schema.name} holds its maximum of ${this.rowsMax} rows`);
    }
    for (const index of this.indexList) {
      if (!index.def.unique) continue;
      const owner = index.tree.get(indexKey(index, row));
      if (owner !== undefined && owner !== key) {
        throw new MemoryError('conflict', `${this.schema.name}: unique index ${index.def.name} already holds that value`);
      }
    }
  }

  /** Low-level put used by rollback and replay (checks done by the caller). The row is stored encoded. */
  put(key: string, row: Row): void {
    this.replace(key, row, this.rows.get(key));
  }

  /** Put `row` under `key` where the tree holds `existing` (what lookup(key) gave; no second descent); what it stores now. */
  replace(key: string, row: Row, existing: StoredRow | undefined): StoredRow {
    const indexesKept = existing === undefined ? 0 : this.forget(key, existing, row);
    const stored = this.encodedOf(row);
    if (existing === undefined) {
      this.rows.set(key, stored);
    } else if (this.slotChanges !== this.treeChanges || !setAtSlot(this.slot, key, stored)) {
      // Only the value changes: set() would also store this key string, a young one the old
      // generation then holds (promoted at the next scavenge, the tree's own copy left as garbage).
      this.valueEdit.value = stored;
      this.rows.editRange(key, key, true, this.editValue);
    }
    this.treeChanges++;
    this.indexAdd(key, row, indexesKept);
    return stored;
  }

  /**
   * Put `row` under `key` if the tree holds nothing there (one descent: the caller did not look
   * it up); what it stores now, or undefined, and nothing changed, when the key is taken.
   */
  insertNew(key: string, row: Row): StoredRow | undefined {
    const stored = this.encodedOf(row);
    if (!this.rows.set(key, stored, false)) {
      if (typeof stored === 'number') this.arena.noteDead(stored);
      return undefined;
    }
    this.treeChanges++;
    this.indexAdd(key, row);
    return stored;
  }

  /** The row's reference in the arena, or (arena full) the row itself. */
  private encodedOf(row: Row): StoredRow {
    const packed = packInPlace(rowPackr, rowToFields(this.schema, row, this.fieldsScratch));
    return this.arena.copyIn(packed, packed.start, packed.end) ?? row;
  }

  /**
   * The stored row under `key` is going: its index entries go, and its bytes count as dead.
   * When `next` replaces it, an entry whose index key `next` keeps (an update that leaves the
   * indexed columns alone, the usual case) stays in its tree: bit i of the result is set for
   * index i kept, and indexAdd skips it. Old index keys are read from the bytes, not a decoded row.
   */
  private forget(key: string, stored: StoredRow, next?: Row): number {
    if (this.compactFrom !== undefined) this.changesSinceStep++;
    let kept = 0;
    const indexes = this.indexList;
    for (let i = 0; i < indexes.length; i++) {
      const index = indexes[i]!;
      const oldKey = storedIndexKey(this.arena, index, stored);
      if (next !== undefined && i < indexesKeptBits && indexKey(index, next) === oldKey) kept |= 1 << i;
      else index.tree.delete(index.def.unique ? oldKey : oldKey + key);
    }
    if (typeof stored === 'number') this.arena.noteDead(stored);
    return kept;
  }

  /**
   * Put the row whose encoded field array is buf[start, end) (replay of an insert) under its own
   * key, kept encoded: false, and nothing changed, when the key is taken. `decoded` is the row
   * itself when the caller has it already (it must equal the bytes); otherwise it is decoded
   * only if the arena is full (index keys are read from the bytes).
   */
  putNewEncoded(buf: Buffer, start: number, end: number, decoded?: Row): boolean {
    this.treeChanges++;
    const key = encodedRowKey(this.schema, this.keyColumns, this.keyParts, buf, start, end);
    // One descent: the copy made for a key that turns out taken is wasted, but that is damage.
    const ref = this.arena.copyIn(buf, start, end);
    const row = decoded ?? (ref === undefined ? this.decodeAt(buf, start, end) : undefined);
    if (!this.rows.set(key, ref ?? row!, false)) {
      if (ref !== undefined) this.arena.noteDead(ref);
      return false;
    }
    // Replayed rows met their unique indexes when committed (a frame's deletes come before its
    // inserts), so a value held twice means an index the rows never met: one a later release
    // added over them. Refused, as a snapshot's load refuses it, never one entry silently kept.
    for (const index of this.indexList) {
      // Index keys read from the bytes: the row is never decoded at open.
      const ik = row ? indexKey(index, row) : encodedRowKey(this.schema, index.positions, index.parts, buf, start, end);
      if (!index.tree.set(index.def.unique ? ik : ik + key, key, false) && index.def.unique) throw uniqueHeldTwice(this.schema, index.def);
    }
    return true;
  }

  /** The key of the row encoded at buf[start, end), read from its bytes. */
  keyOfEncoded(buf: Buffer, start: number, end: number): string {
    return encodedRowKey(this.schema, this.keyColumns, this.keyParts, buf, start, end);
  }

  /** Decode the row encoded at buf[start, end). */
  decodeAt(buf: Buffer, start: number, end: number): Row {
    return fieldsToRow(this.schema, rowUnpackr.unpack(buf, { start, end }));
  }

  remove(key: string): Row | undefined {
    const stored = this.rows.get(key);
    if (stored === undefined) return undefined;
    const old = this.rowOfStored(stored);
    this.removeStored(key, stored);
    return old;
  }

  /** Remove the row under `key` where the tree holds `stored` (what lookup(key) gave). */
  removeStored(key: string, stored: StoredRow): void {
    this.forget(key, stored);
    this.rows.delete(key);
    this.treeChanges++;
  }

  /** Remove a row without handing it out: decoded only when an index needs it. False when there was none. */
  removeKey(key: string): boolean {
    const stored = this.rows.get(key);
    if (stored === undefined) return false;
    this.removeStored(key, stored);
    return true;
  }

  /**
   * One step of an arena compaction (row-arena.ts): begins one when it is due, then moves the
   * rows of max(rowsMin, twice the rows changed since the last step) keys out of the old chunks.
   * True while the compaction has more to do. The rows' values do not change, only where their
   * bytes are, so any state hash stays.
   */
  compactStep(rowsMin: number = compactionStepRowsMin): boolean {
    this.treeChanges++;
    const rowsMax = Math.max(rowsMin, 2 * this.changesSinceStep);
    this.changesSinceStep = 0;
    const arena = this.arena;
    if (this.compactFrom === undefined) {
      if (!arena.compactionDue) return false;
      const first = this.rows.minKey();
      if (first === undefined) return false;
      arena.beginCompaction();
      this.compactFrom = first;
      this.changesSinceStep = 0;
    }
    const last = this.rows.maxKey();
    if (last === undefined || this.compactFrom > last) return this.endCompaction(true);
    let visited = 0;
    let next: string | undefined;
    let full = false;
    this.rows.editRange(this.compactFrom, last, true, (key, stored) => {
      if (visited === rowsMax) {
        next = key;
        return { break: true };
      }
      visited++;
      if (typeof stored !== 'number' || !arena.isOld(stored)) return undefined;
      const moved = arena.move(stored);
      if (moved === undefined) {
        full = true;
        return { break: true };
      }
      return { value: moved };
    });
    if (full) return this.endCompaction(false);
    if (next === undefined) return this.endCompaction(true);
    this.compactFrom = next;
    return true;
  }

  private endCompaction(walked: boolean): false {
    this.compactFrom = undefined;
    if (walked) this.arena.endCompaction();
    else this.arena.abortCompaction();
    return false;
  }

  *scan(options: ScanOptions = {}): IterableIterator<Row> {
    for (const [, row] of this.entries(options)) yield row;
  }

  page(options: ScanOptions & { limit: number }): Page {
    if (!(options.limit >= 1 && options.limit <= pageRowsMax)) {
      throw new MemoryError('invalid_argument', `page limit must be 1..${pageRowsMax}`);
    }
    const rows: Row[] = [];
    let lastKey: string | undefined;
    let more = false;
    // One row past the page tells whether there is a next page.
    for (const [key, row] of this.entries({ ...options, limit: options.limit + 1 })) {
      if (rows.length === options.limit) {
        more = true;
        break;
      }
      rows.push(row);
      lastKey = key;
    }
    return more && lastKey !== undefined ? { rows, nextKey: lastKey } : { rows };
  }

  /** Rows a scan would yield, up to options.limit, counted without decoding them. */
  count(options: ScanOptions & { limit: number }): number {
    let count = 0;
    for (const _ of this.storedEntries(options)) count++;
    return count;
  }

  /** Entries as [scan key, row]: the scan key is the primary key, or the index entry key. */
  private *entries(options: ScanOptions): IterableIterator<[string, Row]> {
    for (const [key, stored] of this.storedEntries(options)) yield [key, this.rowOfStored(stored)];
  }

  /** Entries as [scan key, stored row], the rows not yet decoded. */
  private *storedEntries(options: ScanOptions): IterableIterator<[string, StoredRow]> {
    const { low, high, highInclusive } = this.bounds(options);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    let count = 0;
    const tree: BTree<string, unknown> = options.index ? this.index(options.index).tree : this.rows;
    const iterator = options.reverse ? tree.entriesReversed(high) : tree.entries(low);
    for (const [key, value] of iterator) {
      if (count >= limit) return;
      if (options.reverse) {
        if (low !== undefined && key < low) return;
        if (high !== undefined && (key > high || (!highInclusive && key === high))) continue;
      } else if (high !== undefined && (key > high || (!highInclusive && key === high))) {
        return;
      }
      if (low !== undefined && key < low) continue;
      if (options.afterKey !== undefined) {
        if (options.reverse ? key >= options.afterKey : key <= options.afterKey) continue;
      }
      const stored = options.index ? this.rows.get(value as string) : (value as StoredRow);
      if (stored === undefined) throw new Error(`index ${options.index} of ${this.schema.name} points at a missing row`);
      count++;
      yield [key, stored];
    }
  }

  private bounds(options: ScanOptions): { low?: string; high?: string; highInclusive: boolean } {
    if (options.prefix) {
      const p = encodeKey(options.prefix);
      return { low: p, high: prefixUpperBound(p), highInclusive: false };
    }
    const range: KeyRange = options.range ?? {};
    const low = range.from ? encodeKey(range.from) : undefined;
    let high = range.to ? encodeKey(range.to) : undefined;
    // An inclusive upper bound given as a prefix covers every key that starts with it.
    if (high !== undefined && range.toInclusive) high = prefixUpperBound(high);
    return low === undefined ? (high === undefined ? { highInclusive: false } : { high, highInclusive: false })
      : high === undefined ? { low, highInclusive: false } : { low, high, highInclusive: false };
  }

  private index(name: string): Index {
    const index = this.indexes.get(name);
    if (!index) throw new MemoryError('invalid_argument', `${this.schema.name} has no index ${name}`);
    return index;
  }

  /** Add `row`'s index entries, but for the indexes whose bit is set in `kept` (their entry is still there). */
  private indexAdd(key: string, row: Row, kept = 0): void {
    const indexes = this.indexList;
    for (let i = 0; i < indexes.length; i++) {
      if ((kept & (1 << i)) !== 0) continue;
      const index = indexes[i]!;
      const ik = indexKey(index, row);
      index.tree.set(index.def.unique ? ik : ik + key, key);
    }
  }
}

function uniqueHeldTwice(schema: TableSchema, def: IndexDef): Error {
  return new Error(`${schema.name}: unique index ${def.name} holds one value twice (rows written before the index was declared break it: open the store with the release before, and make the rows unique)`);
}

function newIndex(schema: TableSchema, def: IndexDef, tree: BTree<string, string>): Index {
  const positions = def.columns.map((c) => schema.columns.findIndex((col) => col.name === c));
  return { schema, def, columns: def.columns, positions, parts: new Array<Value>(positions.length).fill(null), tree };
}

function indexKey(index: Index, row: Row): string {
  return encodeKey(index.columns.map((c) => row[c] ?? null));
}

/**
 * The index key of a stored row, then `suffix` (an entry's primary key, for a non-unique index):
 * read from its bytes when it is in the arena (no row object), in one piece. The walk stops
 * after the last index column, inside the row: arena rows were whole when copied in.
 */
function storedIndexKey(arena: RowArena, index: Index, stored: StoredRow, suffix = ''): string {
  if (typeof stored !== 'number') return indexKey(index, stored) + suffix;
  const chunk = arena.chunkOf(stored);
  return encodedRowKey(index.schema, index.positions, index.parts, chunk, rowStart(stored), chunk.length, suffix);
}
