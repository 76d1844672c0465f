/**
 * Frame payload: two msgpack values back to back, so replay decodes only what it applies.
 *
 *   changes:    [formatVersion, [[table, [deleted rows...], [inserted rows...]], ...]]
 *   invocation: [reducer, args, caller, timestampMs, idempotencyKey|null]
 *
 * The changes are what replay applies (rows as field arrays in column order, row-codec.ts);
 * the invocation is for audit, history and re-execution checks.
 */
import type { Caller, Invocation, TableChanges, TxRecord } from '../changes.js';
import { fieldsToRow, packr, rowToFields, rowUnpackr } from '../row-codec.js';
import { msgpackValueEnd } from '../msgpack-extent.js';
import type { TableSchema } from '../schema.js';

const payloadFormatVersion = 2;

export function encodePayload(
  invocation: Invocation,
  changes: readonly TableChanges[],
  schemas: ReadonlyMap<string, TableSchema>,
): Buffer {
  const encodedChanges = changes.map((c) => {
    const schema = schemas.get(c.table)!;
    return [c.table, c.deletes.map((r) => rowToFields(schema, r)), c.inserts.map((r) => rowToFields(schema, r))];
  });
  return Buffer.concat([
    packr.pack([payloadFormatVersion, encodedChanges]),
    packr.pack([invocation.reducer, invocation.args ?? null, invocation.caller, invocation.timestampMs, invocation.idempotencyKey ?? null]),
  ]);
}

/** The row changes alone (replay): the invocation that follows them is not decoded. */
export function decodeChanges(offset: number, payload: Uint8Array, schemas: ReadonlyMap<string, TableSchema>): TableChanges[] {
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return decodeChangesAt(offset, buf, 0, buf.length, schemas);
}

/**
 * The row changes of the payload at [start, end) of `buf` (a whole segment), decoded in place:
 * their extent is found first, so the decoder reads exactly them and nothing is copied.
 */
export function decodeChangesAt(offset: number, buf: Buffer, start: number, end: number, schemas: ReadonlyMap<string, TableSchema>): TableChanges[] {
  const changesEnd = msgpackValueEnd(buf, start, end);
  if (changesEnd === undefined) throw new Error(`payload at offset ${offset}: changes are not one whole msgpack value`);
  return changesOf(offset, rowUnpackr.unpack(buf, { start, end: changesEnd }), schemas);
}

export function decodePayload(offset: number, payload: Uint8Array, schemas: ReadonlyMap<string, TableSchema>): TxRecord {
  const values = rowUnpackr.unpackMultiple(payload) as unknown[];
  if (values.length !== 2) throw new Error(`payload at offset ${offset}: ${values.length} values, expected 2`);
  const changes = changesOf(offset, values[0], schemas);
  const inv = values[1] as unknown[];
  if (!Array.isArray(inv) || inv.length !== 5) throw new Error(`payload at offset ${offset}: malformed invocation`);
  const [reducer, args, caller, timestampMs, idempotencyKey] = inv as [string, unknown, Caller, number, string | null];
  const invocation: Invocation = idempotencyKey === null
    ? { reducer, args, caller, timestampMs }
    : { reducer, args, caller, timestampMs, idempotencyKey };
  return { offset, invocation, changes };
}

function changesOf(offset: number, head: unknown, schemas: ReadonlyMap<string, TableSchema>): TableChanges[] {
  const v = head as unknown[];
  if (!Array.isArray(v) || v[0] !== payloadFormatVersion || v.length !== 2) throw new Error(`payload at offset ${offset}: unknown format`);
  return (v[1] as [string, unknown[], unknown[]][]).map(([table, deletes, inserts]) => {
    const schema = schemas.get(table);
    if (!schema) throw new Error(`payload at offset ${offset}: unknown table ${table}`);
    return { table, deletes: deletes.map((f) => fieldsToRow(schema, f)), inserts: inserts.map((f) => fieldsToRow(schema, f)) };
  });
}
