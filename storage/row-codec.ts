/**
 * A row on disk (frames, snapshots, the state hash) is the array of its fields in schema
 * column order, encoded with msgpack. Vectors travel as little-endian float32 bytes; the
 * schema restores their type on decode. One codec for every reader and writer.
 */
import { createRequire } from 'node:module';
import { Packr, REUSE_BUFFER_MODE, type Unpackr } from 'msgpackr';
import { encodeKey, keyOfAsciiStringBytes } from './key-codec.js';
import { msgpackValueEnd } from './msgpack-extent.js';
import type { Row, TableSchema, Value } from './schema.js';

/** The one codec configuration. Self-contained records only: no structure shared across frames or snapshot chunks. */
export const rowCodecOptions = { useRecords: false, mapsAsObjects: true, int64AsType: 'number' } as const;

export const packr = new Packr(rowCodecOptions);

/** A second encoder of the same configuration, for streams that copy bytes out of its buffer at once (canonical.ts). */
export function newRowPackr(): Packr {
  return new Packr(rowCodecOptions);
}

/** What `pack` returns in REUSE_BUFFER_MODE: the encoder's own buffer, the value at [start, end). */
export type PackedInPlace = Buffer & { readonly start: number; readonly end: number };

/** Pack `value` with one of newRowPackr's encoders, no buffer made: copy [start, end) out before its next pack. */
export function packInPlace(encoder: Packr, value: unknown): PackedInPlace {
  return encoder.pack(value, REUSE_BUFFER_MODE) as PackedInPlace;
}

// The decoder of logged frames and snapshots: msgpackr's pure-JS build, same code and options.
// The native string extractor costs a call per decode that pays off only on large buffers;
// frames are small, and profiles of replay and snapshot load show the JS path cheaper.
const requireCjs = createRequire(import.meta.url);
const { Unpackr: JsUnpackr } = requireCjs('msgpackr/unpack-no-eval') as { Unpackr: typeof Unpackr };
export const rowUnpackr: Unpackr = new JsUnpackr(rowCodecOptions);

/** `into`: a scratch array to fill (for encoders that pack the fields at once and keep nothing). */
export function rowToFields(schema: TableSchema, row: Row, into?: unknown[]): unknown[] {
  const fields = into ?? new Array<unknown>(schema.columns.length);
  fields.length = schema.columns.length;
  for (let i = 0; i < schema.columns.length; i++) {
    const col = schema.columns[i]!;
    const v = row[col.name] ?? null;
    fields[i] = v instanceof Float32Array ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : v;
  }
  return fields;
}

/** `freeze` is skipped for bulk loads (a snapshot's rows are never handed out mutable anyway: tables only replace rows). */
export function fieldsToRow(schema: TableSchema, fields: unknown, freeze = true): Row {
  if (!Array.isArray(fields) || fields.length !== schema.columns.length) {
    throw new Error(`row of ${schema.name} has ${Array.isArray(fields) ? fields.length : 'no'} fields, schema has ${schema.columns.length}`);
  }
  const row: Record<string, Value> = {};
  for (let i = 0; i < schema.columns.length; i++) {
    const col = schema.columns[i]!;
    const v = fields[i] as Value;
    if (v !== null && col.type === 'vector') {
      const bytes = v as Uint8Array;
      // Copy: the decoded buffer may be unaligned or shared with the rest of the frame.
      row[col.name] = new Float32Array(new Uint8Array(bytes).buffer);
    } else if (v !== null && col.type === 'bytes') {
      row[col.name] = new Uint8Array(v as Uint8Array);
    } else {
      row[col.name] = v;
    }
  }
  return freeze ? Object.freeze(row) : row;
}

/** Where each primary-key column sits in a row's fields (column order): keys straight from decoded fields. */
export function primaryKeyColumnIndexes(schema: TableSchema): number[] {
  return schema.primaryKey.map((name) => schema.columns.findIndex((c) => c.name === name));
}

/**
 * The encoded primary key (key-codec.ts) of the row whose field array is buf[start, end) (one
 * whole msgpack value, as the caller found), read from the bytes: the key columns decoded, the
 * other fields skipped unread. Checks the field count as fieldsToRow does. `parts` is the
 * caller's scratch array (length = key columns).
 */
export function encodedRowKey(schema: TableSchema, keyColumns: readonly number[], parts: Value[], buf: Buffer, start: number, end: number): string {
  let p = start;
  const head = buf[p]!;
  let count: number;
  if (head >= 0x90 && head <= 0x9f) (count = head & 0x0f), (p += 1);
  else if (head === 0xdc && p + 3 <= end) (count = buf.readUInt16BE(p + 1)), (p += 3);
  else if (head === 0xdd && p + 5 <= end) (count = buf.readUInt32BE(p + 1)), (p += 5);
  else throw new Error(`row of ${schema.name} is not an array of fields`);
  if (count !== schema.columns.length) throw new Error(`row of ${schema.name} has ${count} fields, schema has ${schema.columns.length}`);
  if (keyColumns.length === 1 && keyColumns[0] === 0) {
    // The common shape (one string key, first column): the key straight from its bytes.
    const t = buf[p]!;
    const strStart = t >= 0xa0 && t <= 0xbf ? p + 1 : t === 0xd9 && p + 2 <= end ? p + 2 : -1;
    const strEnd = strStart < 0 ? -1 : t === 0xd9 ? strStart + buf[p + 1]! : strStart + (t & 0x1f);
    if (strStart >= 0 && strEnd <= end) {
      const key = keyOfAsciiStringBytes(buf, strStart, strEnd);
      if (key !== undefined) return key;
    }
  }
  // Fields past the last key column are not walked: the caller proved the row is one whole value.
  for (let i = 0, found = 0; found < keyColumns.length; i++) {
    const next = msgpackValueEnd(buf, p, end);
    if (next === undefined) throw new Error(`row of ${schema.name}: field ${i} is not a whole msgpack value`);
    const k = keyColumns.indexOf(i);
    if (k >= 0) (parts[k] = keyScalarAt(buf, p, next)), found++;
    p = next;
  }
  return encodeKey(parts);
}

/** A key column's value (string, integer or boolean) encoded at buf[start, end). */
function keyScalarAt(buf: Buffer, start: number, end: number): Value {
  const t = buf[start]!;
  if (t < 0x80) return t; // positive fixint
  if (t >= 0xa0 && t <= 0xbf) return keyStringAt(buf, start, start + 1, end);
  if (t === 0xd9 || t === 0xda || t === 0xdb) return keyStringAt(buf, start, start + (t === 0xd9 ? 2 : t === 0xda ? 3 : 5), end);
  if (t === 0xc2) return false;
  if (t === 0xc3) return true;
  // Other numbers, nil: rare in keys; the one decoder decides what they are.
  return rowUnpackr.unpack(buf, { start, end }) as Value;
}

/** ASCII strings straight from the bytes (the same string any UTF-8 decoder makes); others through the one decoder. */
function keyStringAt(buf: Buffer, header: number, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) return rowUnpackr.unpack(buf, { start: header, end }) as string;
  }
  return buf.toString('latin1', start, end);
}
