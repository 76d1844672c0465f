/**
 * The `tx` message: one transaction's changes for the queries of one connection. In JSON the
 * message is assembled from each row's cached JSON text, so a change fanned out to a thousand
 * subscribers is serialised once, not a thousand times (rows are immutable once stored).
 */
import type { RowChange } from '../../storage/changes.js';
import type { Row, TableSchema } from '../../storage/schema.js';
import { encodeMessage, wireRow, type WireFormat } from './wire-format.js';

export interface QueryChanges {
  readonly schema: TableSchema;
  readonly inserted: Row[];
  readonly updated: Row[];
  readonly deleted: Row[];
}

export function emptyChanges(schema: TableSchema): QueryChanges {
  return { schema, inserted: [], updated: [], deleted: [] };
}

/** Inserts as the new row, updates as the new row, deletes as the row that left. */
export function appendChanges(into: QueryChanges, changes: readonly RowChange[]): void {
  for (const change of changes) {
    if (change.kind === 'insert') into.inserted.push(change.row);
    else if (change.kind === 'update') into.updated.push(change.row);
    else into.deleted.push(change.oldRow);
  }
}

const rowJson = new WeakMap<Row, string>();

function jsonOf(schema: TableSchema, row: Row): string {
  let text = rowJson.get(row);
  if (text === undefined) rowJson.set(row, (text = JSON.stringify(wireRow(schema, row, 'json'))));
  return text;
}

const lists = ['inserted', 'updated', 'deleted'] as const;

/** `{"type":"tx","offset":N,"queries":[{"id":…,"inserted":[…],"updated":[…],"deleted":[…]}]}`; empty lists omitted. */
export function encodeTxMessage(format: WireFormat, offset: number, queries: Iterable<readonly [string, QueryChanges]>): string | Buffer {
  if (format === 'json') {
    const parts: string[] = [];
    for (const [id, changes] of queries) {
      let part = `{"id":${JSON.stringify(id)}`;
      for (const list of lists) {
        const rows = changes[list];
        if (rows.length > 0) part += `,"${list}":[${rows.map((row) => jsonOf(changes.schema, row)).join(',')}]`;
      }
      parts.push(`${part}}`);
    }
    return `{"type":"tx","offset":${offset},"queries":[${parts.join(',')}]}`;
  }
  const out: Record<string, unknown>[] = [];
  for (const [id, changes] of queries) {
    const entry: Record<string, unknown> = { id };
    for (const list of lists) {
      if (changes[list].length > 0) entry[list] = changes[list].map((row) => wireRow(changes.schema, row, format));
    }
    out.push(entry);
  }
  return encodeMessage(format, { type: 'tx', offset, queries: out });
}
