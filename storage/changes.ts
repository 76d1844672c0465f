/**
 * The row changes of one transaction: what the commitlog frame carries and what replay
 * applies. Per table (sorted by name), deletes then inserts, each sorted by encoded
 * primary key. An update is a delete of the old row plus an insert of the new one.
 */
import type { Row } from './schema.js';

export interface TableChanges {
  readonly table: string;
  readonly deletes: readonly Row[];
  readonly inserts: readonly Row[];
}

/** Who made a transaction: taken from verified claims (or the local identity), never from arguments. */
export interface Caller {
  readonly tenant: string;
  readonly subject: string;
  readonly name?: string;
  readonly roles?: readonly string[];
}

/** The invocation recorded beside the changes: for audit, history and re-execution checks. */
export interface Invocation {
  readonly reducer: string;
  readonly args: unknown;
  readonly caller: Caller;
  readonly timestampMs: number;
  readonly idempotencyKey?: string;
}

export interface TxRecord {
  readonly offset: number;
  readonly invocation: Invocation;
  readonly changes: readonly TableChanges[];
}

/** One row event as subscribers see it. */
export type RowChange =
  | { readonly kind: 'insert'; readonly row: Row }
  | { readonly kind: 'update'; readonly oldRow: Row; readonly row: Row }
  | { readonly kind: 'delete'; readonly oldRow: Row };
