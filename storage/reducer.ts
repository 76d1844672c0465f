/**
 * A reducer is an atomic, deterministic transaction: a name, zod arguments and a function
 * of (ctx, args). It reads time and randomness only from ctx (both fixed per transaction
 * and recorded), so the same log always means the same state. A throw rolls it back whole.
 */
import type { z } from 'zod';
import type { Caller } from './changes.js';
import type { Row, TableSchema, Value } from './schema.js';

export interface KeyRange {
  /** Inclusive lower bound on the index columns (a prefix of them is fine). */
  readonly from?: readonly Value[];
  /** Exclusive upper bound; `toInclusive` makes it inclusive. */
  readonly to?: readonly Value[];
  readonly toInclusive?: boolean;
}

export interface ScanOptions {
  readonly index?: string; // default: the primary key
  readonly range?: KeyRange;
  /** Equal-prefix on the index columns: shorthand for a range covering that prefix. */
  readonly prefix?: readonly Value[];
  readonly reverse?: boolean;
  /** Start strictly after this encoded key (opaque, from a previous page). */
  readonly afterKey?: string;
  readonly limit?: number;
}

export interface Page {
  readonly rows: readonly Row[];
  /** Encoded key of the last row, to continue with `afterKey`; absent at the end. */
  readonly nextKey?: string;
}

/** Read access to one table; the same in reducers and in read views. */
export interface TableReader {
  readonly schema: TableSchema;
  readonly size: number;
  get(key: readonly Value[]): Row | undefined;
  /** Unique index lookup. */
  getBy(index: string, key: readonly Value[]): Row | undefined;
  scan(options?: ScanOptions): IterableIterator<Row>;
  page(options: ScanOptions & { limit: number }): Page;
  /** How many rows scan(options) would yield, at most options.limit; cheaper than scanning (no row is decoded). */
  count(options: ScanOptions & { limit: number }): number;
}

export interface TableWriter extends TableReader {
  /** Fails with conflict if the key exists. */
  insert(row: Record<string, unknown>): Row;
  /** Insert or replace by primary key; returns the stored row. */
  upsert(row: Record<string, unknown>): Row;
  /** Replace an existing row; not_found if it does not exist. */
  update(row: Record<string, unknown>): Row;
  /** Returns the deleted row, or undefined if none. */
  delete(key: readonly Value[]): Row | undefined;
}

export interface ReadView {
  /** Offset of the last transaction applied in this view (-1 for an empty store). */
  readonly offset: number;
  table(name: string): TableReader;
}

export interface ReducerContext {
  readonly caller: Caller;
  /** Fixed for the transaction, recorded in its frame. Never read the ambient clock. */
  readonly timestampMs: number;
  /** The offset this transaction will have if it commits. */
  readonly offset: number;
  /** Deterministic random source seeded from the transaction (offset, timestamp). */
  random(): number;
  /** A deterministic id (hex) derived from the seeded random source. */
  newId(prefix?: string): string;
  table(name: string): TableWriter;
}

export interface ReducerDef<Args = any, Result = any> {
  readonly name: string;
  readonly args: z.ZodType<Args>;
  /**
   * Not refused at the tenant's row bytes limit (liveRowBytesMax): for a reducer whose rows bound
   * themselves (a table keeping its newest N) and must not be lost because the tenant's own data
   * filled it, such as the access log (every request leaves an audit row, DESIGN §2.7).
   */
  readonly passesRowLimit?: boolean;
  run(ctx: ReducerContext, args: Args): Result;
}

/** A store's module: its tables and its reducers. */
export interface StoreModule {
  readonly tables: readonly TableSchema[];
  readonly reducers: readonly ReducerDef[];
  /**
   * The tables whose empty state still counts in the canonical state hash (and is written in
   * snapshots): the module's tables when stores of it were first written. A table added since is
   * left out while it is empty, so adding one changes the hash of no existing store, and a store
   * closed (checkpoint), snapshotted or backed up by the version before opens and restores with
   * the new one. Absent: every table counts, empty or not. Never remove a name from the list.
   */
  readonly tablesHashedWhenEmpty?: readonly string[];
  /**
   * Tables a release no longer uses, their schemas as last declared: stores written before hold
   * their rows, so a table is retired here, never just dropped (a store holding rows of an
   * undeclared table refuses to open, naming it: TableNotInModule). A retired table's rows are
   * kept as they are (loaded, replayed, snapshotted, in the state hash, so every old store, its
   * checkpoint and its backups still verify), but no reducer, read or subscription reaches it.
   * Never remove a name from the list, nor declare a live table of the same name.
   */
  readonly retiredTables?: readonly TableSchema[];
}

/** The names of the module's retired tables, sorted: what verify and inspect mark retired beside the live ones. */
export function retiredTableNames(module: StoreModule): string[] {
  return (module.retiredTables ?? []).map((t) => t.name).sort();
}

export function defineReducer<S extends z.ZodType, R>(def: {
  name: string;
  args: S;
  passesRowLimit?: boolean;
  run(ctx: ReducerContext, args: z.infer<S>): R;
}): ReducerDef<z.infer<S>, R> {
  return def as unknown as ReducerDef<z.infer<S>, R>;
}
