/**
 * A tenant's sovereign store: in-memory tables, its own commitlog and snapshots in one
 * directory. (Public surface fixed here; the body is being written.)
 */
import type { Caller, RowChange, TxRecord } from './changes.js';
import type { ReadView, StoreModule } from './reducer.js';
import type { Row } from './schema.js';
import type { FileLayer } from './io/file-layer.js';

/** A structure derived from a table (e.g. a vector index), kept equal to it on every apply, undo, replay and load. */
export interface DerivedIndex {
  readonly table: string;
  onInsert(row: Row): void;
  onDelete(row: Row): void;
  clear(): void;
}

export interface StoreOptions {
  readonly dir: string;
  readonly module: StoreModule;
  readonly fileLayer?: FileLayer;
  readonly derived?: readonly DerivedIndex[];
  /** Take a snapshot after this many transactions since the last one (0 = never by count). */
  readonly snapshotEveryTx?: number;
  /** Take a snapshot when this much time passed since the last one and something changed (0 = never by time). */
  readonly snapshotEveryMs?: number;
  /** Clock for transaction timestamps (tests pass a fixed one). */
  readonly clock?: () => number;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
}

export interface CallResult<R = unknown> {
  readonly offset: number;
  readonly result: R;
  /** True when an idempotency key matched an earlier call: nothing was written. */
  readonly replayed: boolean;
}

export interface CallOptions {
  readonly idempotencyKey?: string;
}

export type Unsubscribe = () => void;

export interface StoreApi {
  readonly dir: string;
  /** Offset of the last applied transaction (-1 when empty). */
  readonly lastOffset: number;
  /** Offset of the last fdatasync'ed transaction. */
  readonly durableOffset: number;
  call<R = unknown>(reducer: string, args: unknown, caller: Caller, options?: CallOptions): Promise<CallResult<R>>;
  /** Run fn on the current state; its result is released only once that state is durable. */
  read<T>(fn: (view: ReadView) => T): Promise<T>;
  /** One logged transaction, or undefined when the log no longer holds it. */
  readTx(offset: number): Promise<TxRecord | undefined>;
  /** Every durable batch, in offset order, in the same tick as the callers' acknowledgements. */
  onCommit(listener: (txs: readonly TxRecord[]) => void): Unsubscribe;
  /** Row events of one table matching predicate, per durable transaction. */
  subscribe(table: string, predicate: (row: Row) => boolean, listener: (offset: number, changes: readonly RowChange[]) => void): Unsubscribe;
  snapshot(): Promise<{ offset: number; stateHash: string }>;
  stateHash(): string;
  close(): Promise<void>;
}
