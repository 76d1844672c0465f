/**
 * Frame payload: the invocation (for audit, history, re-execution checks) and the row
 * changes replay applies. Rows are field arrays in column order (row-codec.ts).
 *
 *   [formatVersion, reducer, args, caller, timestampMs, idempotencyKey|null,
 *    [[table, [deleted rows...], [inserted rows...]], ...]]
 */
import type { Caller, Invocation, TableChanges, TxRecord } from '../changes.js';
import { fieldsToRow, packr, rowToFields } from '../row-codec.js';
import type { TableSchema } from '../schema.js';

const payloadFormatVersion = 1;

export function encodePayload(
  invocation: Invocation,
  changes: readonly TableChanges[],
  schemas: ReadonlyMap<string, TableSchema>,
): Buffer {
  const encodedChanges = changes.map((c) => {
    const schema = schemas.get(c.table)!;
    return [c.table, c.deletes.map((r) => rowToFields(schema, r)), c.inserts.map((r) => rowToFields(schema, r))];
  });
  return packr.pack([
    payloadFormatVersion,
    invocation.reducer,
    invocation.args ?? null,
    invocation.caller,
    invocation.timestampMs,
    invocation.idempotencyKey ?? null,
    encodedChanges,
  ]);
}

export function decodePayload(offset: number, payload: Uint8Array, schemas: ReadonlyMap<string, TableSchema>): TxRecord {
  const v = packr.unpack(payload) as unknown[];
  if (!Array.isArray(v) || v[0] !== payloadFormatVersion || v.length !== 7) {
    throw new Error(`payload at offset ${offset}: unknown format`);
  }
  const [, reducer, args, caller, timestampMs, idempotencyKey, encodedChanges] = v as [
    number, string, unknown, Caller, number, string | null, [string, unknown[], unknown[]][],
  ];
  const changes: TableChanges[] = encodedChanges.map(([table, deletes, inserts]) => {
    const schema = schemas.get(table);
    if (!schema) throw new Error(`payload at offset ${offset}: unknown table ${table}`);
    return { table, deletes: deletes.map((f) => fieldsToRow(schema, f)), inserts: inserts.map((f) => fieldsToRow(schema, f)) };
  });
  const invocation: Invocation = idempotencyKey === null
    ? { reducer, args, caller, timestampMs }
    : { reducer, args, caller, timestampMs, idempotencyKey };
  return { offset, invocation, changes };
}
