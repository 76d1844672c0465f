/**
 * The row events of one logged transaction as one query sees them, for resume (live events
 * come from the engine's hub, which classifies the same way): the log holds an update as a
 * delete of the old row plus an insert of the new one under the same primary key; a row
 * that stays in the predicate is `updated`, one that moves in is `inserted`, out `deleted`.
 */
import type { RowChange, TxRecord } from '../../storage/changes.js';
import { encodeKey } from '../../storage/key-codec.js';
import type { Row } from '../../storage/schema.js';
import type { CompiledQuery } from './query.js';

export function queryChangesOf(tx: TxRecord, query: CompiledQuery): RowChange[] {
  const events: RowChange[] = [];
  for (const change of tx.changes) {
    if (change.table !== query.table) continue;
    const keyOf = (row: Row) => encodeKey(query.schema.primaryKey.map((c) => row[c] ?? null));
    const pairs = new Map<string, { old?: Row; row?: Row }>();
    for (const old of change.deletes) pairs.set(keyOf(old), { old });
    for (const row of change.inserts) {
      const key = keyOf(row);
      const pair = pairs.get(key);
      if (pair) pair.row = row;
      else pairs.set(key, { row });
    }
    for (const { old, row } of pairs.values()) {
      const before = old !== undefined && query.matches(old);
      const after = row !== undefined && query.matches(row);
      if (before && after) events.push({ kind: 'update', oldRow: old, row });
      else if (after) events.push({ kind: 'insert', row });
      else if (before) events.push({ kind: 'delete', oldRow: old });
    }
  }
  return events;
}
