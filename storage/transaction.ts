/**
 * One reducer invocation in progress. Changes are applied to the tables at once (so the
 * reducer reads its own writes) and remembered per key as (old, new); `rollback` restores
 * every old row, `changes` yields the net effect in canonical order for the frame.
 */
import type { Caller, RowChange, TableChanges } from './changes.js';
import { MemoryError } from './errors.js';
import { encodeKey } from './key-codec.js';
import type { Page, ReducerContext, ScanOptions, TableWriter } from './reducer.js';
import type { StoredRow } from './row-arena.js';
import type { Row, Value } from './schema.js';
import type { Table } from './table.js';

/** A reducer that touches more rows than this is refused: it would make a frame too large to reason about. */
export const txRowChangesMax = 100_000;

export interface KeyChange {
  readonly key: string;
  readonly old: Row | undefined;
  readonly row: Row | undefined;
  /** What the table stored for `old` and stores for `row` (arena references: the frame copies their bytes). */
  readonly oldStored?: StoredRow | undefined;
  readonly rowStored?: StoredRow | undefined;
}

/** One key a transaction touched: the row before it (first seen) and the row now, with what the table stores for each. */
interface TouchedKey {
  readonly table: string;
  readonly key: string;
  readonly old: Row | undefined;
  readonly oldStored: StoredRow | undefined;
  row: Row | undefined;
  rowStored: StoredRow | undefined;
}

/** Up to this many touched keys are found by a linear scan; past it a map is built (most reducers touch 1-3 rows). */
const touchedScanMax = 8;

/**
 * The list a transaction starts with, shared and frozen. An empty array literal grows a 17-slot
 * store on its first push: ~150 bytes per list per call, for the one entry most reducers make.
 */
const noEntries: never[] = Object.freeze([]) as never[];

/** `list` with `item` appended: the first item makes an exact one-slot array, later ones push. */
function withEntry<T>(list: T[], item: T): T[] {
  if (list.length === 0) return [item];
  list.push(item);
  return list;
}

export interface NetTableChanges {
  readonly table: string;
  readonly keyChanges: KeyChange[];
}

export class Transaction implements ReducerContext {
  /** Touched keys in first-touch order; `touchedIndex` (table NUL key) joins it past touchedScanMax. */
  private touched: TouchedKey[] = noEntries;
  private touchedIndex: Map<string, TouchedKey> | undefined;
  private handles: TxTableWriter[] = noEntries;
  private rng: (() => number) | undefined; // made on first use: most reducers never draw

  constructor(
    private readonly tables: ReadonlyMap<string, Table>,
    readonly caller: Caller,
    readonly timestampMs: number,
    readonly offset: number,
  ) {}

  random(): number {
    this.rng ??= seededRandom(this.offset, this.timestampMs);
    return this.rng();
  }

  newId(prefix = 'id'): string {
    let hex = '';
    for (let i = 0; i < 4; i++) hex += Math.floor(this.random() * 0x10000).toString(16).padStart(4, '0');
    return `${prefix}_${hex}`;
  }

  table(name: string): TableWriter {
    for (const handle of this.handles) if (handle.schema.name === name) return handle;
    const table = this.tables.get(name);
    if (!table) throw new MemoryError('invalid_argument', `no table ${name}`);
    const handle = new TxTableWriter(table, this);
    this.handles = withEntry(this.handles, handle);
    return handle;
  }

  /**
   * Net changes per table, tables by name, keys in order; untouched-in-effect keys dropped.
   * The KeyChange objects are the transaction's own records: call once, when the reducer is done.
   */
  netChanges(): NetTableChanges[] {
    const touched = this.touched;
    if (touched.length === 1) {
      const only = touched[0]!;
      return only.old === only.row ? [] : [{ table: only.table, keyChanges: [only] }];
    }
    // One sort by (table, key): encoded keys and table names compare as plain strings.
    const ordered = touched.filter((t) => t.old !== t.row).sort(compareTouched);
    const out: NetTableChanges[] = [];
    let current: NetTableChanges | undefined;
    for (const t of ordered) {
      if (current?.table !== t.table) out.push((current = { table: t.table, keyChanges: [] }));
      current.keyChanges.push(t);
    }
    return out;
  }

  /** Live row bytes the tables this transaction wrote gained since it began (negative: it freed some). */
  liveRowBytesGrowth(): number {
    let growth = 0;
    for (const handle of this.handles) growth += handle.liveRowBytesGrowth();
    return growth;
  }

  /**
   * Undo every change, newest state back to the state before the reducer ran. Two passes: every
   * touched key's row goes, then the old rows come back. In one pass, an old row put back under a
   * unique index value that a key touched later still held took that entry over, and removing the
   * later row then took the entry with it (the old row was lost from the index).
   */
  rollback(): void {
    for (const { table: name, key } of this.touched) this.tables.get(name)!.remove(key);
    for (const { table: name, key, old } of this.touched) if (old) this.tables.get(name)!.put(key, old);
    this.touched = noEntries;
    this.touchedIndex = undefined;
  }

  private find(table: string, key: string): TouchedKey | undefined {
    if (this.touchedIndex) return this.touchedIndex.get(`${table}\u0000${key}`);
    for (const t of this.touched) if (t.key === key && t.table === table) return t;
    return undefined;
  }

  /** Called by TxTableWriter for every row it changes: the row before and after, and what the table stored / stores for each. */
  noteChange(table: Table, key: string, old: Row | undefined, row: Row | undefined, oldStored: StoredRow | undefined, rowStored: StoredRow | undefined): void {
    const name = table.schema.name;
    const seen = this.find(name, key);
    if (seen) {
      seen.row = row;
      seen.rowStored = rowStored;
      return;
    }
    if (this.touched.length >= txRowChangesMax) {
      throw new MemoryError('limit_exceeded', `a transaction may change at most ${txRowChangesMax} rows`);
    }
    const entry: TouchedKey = { table: name, key, old, oldStored, row, rowStored };
    this.touched = withEntry(this.touched, entry);
    if (this.touchedIndex) this.touchedIndex.set(`${name}\u0000${key}`, entry);
    else if (this.touched.length > touchedScanMax) {
      // Table names never hold NUL, so table NUL key is unambiguous.
      this.touchedIndex = new Map(this.touched.map((t) => [`${t.table}\u0000${t.key}`, t]));
    }
  }
}

function compareTouched(a: TouchedKey, b: TouchedKey): number {
  if (a.table !== b.table) return a.table < b.table ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * A table as one transaction writes it: every change goes through `noteChange` for undo and the frame.
 * It remembers the last key it looked up: the usual reducer reads a row and then writes it,
 * and the write need not search the tree again (only this writer changes the table during the transaction).
 */
class TxTableWriter implements TableWriter {
  private lastKey: string | undefined;
  /**
   * The value lastKey encodes when the primary key is one column (keyColumn), else undefined: a
   * put of a row holding that value has that key, and its key is not encoded again. Equal values
   * encode equally (key-codec.ts), and a value is kept, not the caller's array, which it may change.
   */
  private lastKeyValue: Value | undefined;
  private lastRow: Row | undefined;
  /** What the tree held under lastKey when it was looked up or written. */
  private lastStored: StoredRow | undefined;
  /** The primary key's column when it is one column. */
  private readonly keyColumn: string | undefined;
  /** The table's live row bytes when the transaction first named it (before any change of its own). */
  private readonly liveBytesAtStart: number;

  constructor(private readonly t: Table, private readonly tx: Transaction) {
    this.liveBytesAtStart = t.arena.liveBytes;
    this.keyColumn = t.schema.primaryKey.length === 1 ? t.schema.primaryKey[0] : undefined;
  }

  liveRowBytesGrowth(): number {
    return this.t.arena.liveBytes - this.liveBytesAtStart;
  }

  get schema() {
    return this.t.schema;
  }
  get size(): number {
    return this.t.size;
  }
  get(keyValues: readonly Value[]): Row | undefined {
    const key = encodeKey(keyValues);
    const stored = this.t.lookup(key);
    const row = stored === undefined ? undefined : this.t.rowOfStored(stored);
    this.remember(key, keyValues, row, stored);
    return row;
  }
  getBy(index: string, key: readonly Value[]): Row | undefined {
    return this.t.getBy(index, key);
  }
  scan(options?: ScanOptions): IterableIterator<Row> {
    return this.t.scan(options);
  }
  page(options: ScanOptions & { limit: number }): Page {
    return this.t.page(options);
  }
  count(options: ScanOptions & { limit: number }): number {
    return this.t.count(options);
  }
  insert(row: Record<string, unknown>): Row {
    return this.put(row, 'insert');
  }
  upsert(row: Record<string, unknown>): Row {
    return this.put(row, 'upsert');
  }
  update(row: Record<string, unknown>): Row {
    return this.put(row, 'update');
  }
  delete(keyValues: readonly Value[]): Row | undefined {
    const key = encodeKey(keyValues);
    const known = key === this.lastKey;
    const stored = known ? this.lastStored : this.t.lookup(key);
    if (stored === undefined) return undefined;
    const old = known ? this.lastRow! : this.t.rowOfStored(stored);
    this.t.removeStored(key, stored);
    this.remember(key, keyValues, undefined, undefined);
    this.tx.noteChange(this.t, key, old, undefined, stored, undefined);
    return old;
  }

  private put(input: Record<string, unknown>, mode: 'insert' | 'upsert' | 'update'): Row {
    const table = this.t;
    const row = table.normalise(input);
    const keyColumn = this.keyColumn;
    // The usual reducer read the row just before: no second encoding of its key, no second descent, no second decode.
    const key = keyColumn !== undefined && this.lastKeyValue !== undefined && row[keyColumn] === this.lastKeyValue ? this.lastKey! : table.keyOf(row);
    const known = key === this.lastKey;
    if (mode === 'insert' && !known && !table.full) return this.insertUnseen(key, row);
    const stored = known ? this.lastStored : table.lookup(key);
    if (mode === 'insert' && stored !== undefined) throw new MemoryError('conflict', `${table.schema.name}: key already exists`);
    if (mode === 'update' && stored === undefined) throw new MemoryError('not_found', `${table.schema.name}: no row with that key`);
    const existing = known ? this.lastRow : stored === undefined ? undefined : table.rowOfStored(stored);
    table.checkPut(key, row, stored);
    const rowStored = table.replace(key, row, stored);
    this.rememberRow(key, row, rowStored);
    this.tx.noteChange(table, key, existing, row, stored, rowStored);
    return row;
  }

  /** An insert of a key not looked up before: one descent, which finds the key taken or puts the row. */
  private insertUnseen(key: string, row: Row): Row {
    const table = this.t;
    table.checkPut(key, row, undefined);
    const rowStored = table.insertNew(key, row);
    if (rowStored === undefined) throw new MemoryError('conflict', `${table.schema.name}: key already exists`);
    this.rememberRow(key, row, rowStored);
    this.tx.noteChange(table, key, undefined, row, undefined, rowStored);
    return row;
  }

  /** A key looked up or deleted by its values (`keyValues`, as the caller gave them). */
  private remember(key: string, keyValues: readonly Value[], row: Row | undefined, stored: StoredRow | undefined): void {
    this.lastKey = key;
    this.lastKeyValue = this.keyColumn !== undefined && keyValues.length === 1 ? keyValues[0] : undefined;
    this.lastRow = row;
    this.lastStored = stored;
  }

  /** A row just put under `key`. */
  private rememberRow(key: string, row: Row, stored: StoredRow): void {
    this.lastKey = key;
    this.lastKeyValue = this.keyColumn !== undefined ? row[this.keyColumn] : undefined;
    this.lastRow = row;
    this.lastStored = stored;
  }
}

/**
 * A frame's changes (per table: deletes, then inserts, each in key order; changes.ts) as net
 * changes per key, an old and a new row under one key making an update. For transactions whose
 * own records were not kept (Store: a pending transaction keeps only its frame).
 */
export function fromTableChanges(changes: readonly TableChanges[], keyOf: (table: string, row: Row) => string): NetTableChanges[] {
  return changes.map(({ table, deletes, inserts }) => {
    const keyChanges: KeyChange[] = [];
    let d = 0;
    let i = 0;
    while (d < deletes.length || i < inserts.length) {
      const oldKey = d < deletes.length ? keyOf(table, deletes[d]!) : undefined;
      const newKey = i < inserts.length ? keyOf(table, inserts[i]!) : undefined;
      if (newKey === undefined || (oldKey !== undefined && oldKey < newKey)) keyChanges.push({ key: oldKey!, old: deletes[d++], row: undefined });
      else if (oldKey === newKey) keyChanges.push({ key: newKey, old: deletes[d++], row: inserts[i++] });
      else keyChanges.push({ key: newKey, old: undefined, row: inserts[i++] });
    }
    return { table, keyChanges };
  });
}

/** Subscriber form: insert / update / delete per key. */
export function toRowChanges(keyChanges: readonly KeyChange[]): RowChange[] {
  return keyChanges.map((c): RowChange =>
    c.old && c.row ? { kind: 'update', oldRow: c.old, row: c.row }
      : c.row ? { kind: 'insert', row: c.row }
      : { kind: 'delete', oldRow: c.old! });
}

/** mulberry32 seeded from the transaction's offset and timestamp. */
function seededRandom(offset: number, timestampMs: number): () => number {
  let state = (Math.imul(offset ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(timestampMs % 0x7fffffff, 0xc2b2ae35)) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

