/**
 * The row events of one logged transaction as one query sees them, for resume (live events
 * come from the engine's hub; both use its `classify`): the log holds an update as a
 * delete of the old row plus an insert of the new one under the same primary key; a row
 * that stays in the predicate is `updated`, one that moves in is `inserted`, out `deleted`.
 */
import type { RowChange, TxRecord } from '../../storage/changes.js';
import { encodeKey } from '../../storage/key-codec.js';
import type { Row } from '../../storage/schema.js';
import { classify } from '../../storage/subscriptions.js';
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
    for (const pair of pairs.values()) {
      const event = classify((r) => query.matches(r), { old: pair.old, row: pair.row });
      if (event) events.push(event);
    }
  }
  return events;
}
