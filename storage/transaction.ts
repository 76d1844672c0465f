/**
 * One reducer invocation in progress. Changes are applied to the tables at once (so the
 * reducer reads its own writes) and remembered per key as (old, new); `rollback` restores
 * every old row, `changes` yields the net effect in canonical order for the frame.
 */
import type { Caller, RowChange, TableChanges } from './changes.js';
import { MemoryError } from './errors.js';
import { encodeKey } from './key-codec.js';
import type { Page, ReducerContext, ScanOptions, TableWriter } from './reducer.js';
import type { Row, TableSchema, Value } from './schema.js';
import type { Table } from './table.js';

/** A reducer that touches more rows than this is refused: it would make a frame too large to reason about. */
export const txRowChangesMax = 100_000;

export interface KeyChange {
  readonly key: string;
  readonly old: Row | undefined;
  readonly row: Row | undefined;
}

export class Transaction implements ReducerContext {
  /** table -> key -> first old row and latest new row. */
  private readonly touched = new Map<string, Map<string, { old: Row | undefined; row: Row | undefined }>>();
  private readonly handles = new Map<string, TableWriter>();
  private rng: (() => number) | undefined; // made on first use: most reducers never draw
  private changeCount = 0;

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
    let handle = this.handles.get(name);
    if (!handle) {
      const table = this.tables.get(name);
      if (!table) throw new MemoryError('invalid_argument', `no table ${name}`);
      handle = this.writer(table);
      this.handles.set(name, handle);
    }
    return handle;
  }

  /** Net changes per table, tables by name, keys in order; untouched-in-effect keys dropped. */
  netChanges(): { table: string; keyChanges: KeyChange[] }[] {
    const out: { table: string; keyChanges: KeyChange[] }[] = [];
    for (const name of [...this.touched.keys()].sort()) {
      const perKey = this.touched.get(name)!;
      const keyChanges: KeyChange[] = [];
      for (const key of [...perKey.keys()].sort()) {
        const { old, row } = perKey.get(key)!;
        if (old === row) continue;
        keyChanges.push({ key, old, row });
      }
      if (keyChanges.length > 0) out.push({ table: name, keyChanges });
    }
    return out;
  }

  /** Undo every change, newest state back to the state before the reducer ran. */
  rollback(): void {
    for (const [name, perKey] of this.touched) {
      const table = this.tables.get(name)!;
      for (const [key, { old }] of perKey) {
        if (old) table.put(key, old);
        else table.remove(key);
      }
    }
    this.touched.clear();
  }

  private record(table: Table, key: string, old: Row | undefined, row: Row | undefined): void {
    let perKey = this.touched.get(table.schema.name);
    if (!perKey) {
      perKey = new Map();
      this.touched.set(table.schema.name, perKey);
    }
    const seen = perKey.get(key);
    if (seen) seen.row = row;
    else {
      if (++this.changeCount > txRowChangesMax) {
        throw new MemoryError('limit_exceeded', `a transaction may change at most ${txRowChangesMax} rows`);
      }
      perKey.set(key, { old, row });
    }
  }

  private writer(table: Table): TableWriter {
    return new TxTableWriter(table, this);
  }

  /** Called by TxTableWriter for every row it changes. */
  noteChange(table: Table, key: string, old: Row | undefined, row: Row | undefined): void {
    this.record(table, key, old, row);
  }
}

/** A table as one transaction writes it: every change goes through `noteChange` for undo and the frame. */
class TxTableWriter implements TableWriter {
  constructor(private readonly t: Table, private readonly tx: Transaction) {}

  get schema() {
    return this.t.schema;
  }
  get size(): number {
    return this.t.size;
  }
  get(key: readonly Value[]): Row | undefined {
    return this.t.get(key);
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
    const old = this.t.remove(key);
    if (old) this.tx.noteChange(this.t, key, old, undefined);
    return old;
  }

  private put(input: Record<string, unknown>, mode: 'insert' | 'upsert' | 'update'): Row {
    const table = this.t;
    const row = table.normalise(input);
    const key = table.keyOf(row);
    const existing = table.getByKey(key);
    if (mode === 'insert' && existing) throw new MemoryError('conflict', `${table.schema.name}: key already exists`);
    if (mode === 'update' && !existing) throw new MemoryError('not_found', `${table.schema.name}: no row with that key`);
    table.checkPut(key, row);
    table.put(key, row);
    this.tx.noteChange(table, key, existing, row);
    return row;
  }
}

/** The frame's form of net changes: deletes (old rows) and inserts (new rows), in key order. */
export function toTableChanges(net: readonly { table: string; keyChanges: readonly KeyChange[] }[]): TableChanges[] {
  return net.map(({ table, keyChanges }) => ({
    table,
    deletes: keyChanges.filter((c) => c.old).map((c) => c.old!),
    inserts: keyChanges.filter((c) => c.row).map((c) => c.row!),
  }));
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

