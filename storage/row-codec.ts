/**
 * A row on disk (frames, snapshots, the state hash) is the array of its fields in schema
 * column order, encoded with msgpack. Vectors travel as little-endian float32 bytes; the
 * schema restores their type on decode. One codec for every reader and writer.
 *
 * Columns added later (ColumnDef.addedLater, schema.ts) are trailing, and a row's trailing
 * added-later fields that hold their defaults are left off its array: a row has exactly one
 * encoding, and it is the encoding rows written before the column existed already have, so old
 * frames replay, old snapshots load, and the state hash of an upgraded store is unchanged.
 */
import { createRequire } from 'node:module';
import { Packr, REUSE_BUFFER_MODE, type Unpackr } from 'msgpackr';
import { encodeKey, KeyBytes } from './key-codec.js';
import { msgpackValueEnd } from './msgpack-extent.js';
import { fieldsMin, type Row, type TableSchema, type Value } from './schema.js';

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
  // One property read for a table with no column added later (the last one would be).
  if (schema.columns[schema.columns.length - 1]!.addedLater) trimDefaults(schema, fields);
  return fields;
}

/** Leave off the trailing added-later fields that hold their defaults (the one encoding of such a row). */
function trimDefaults(schema: TableSchema, fields: unknown[]): void {
  let n = fields.length;
  for (let col = schema.columns[n - 1]; col?.addedLater && Object.is(fields[n - 1] ?? null, col.default); col = schema.columns[n - 1]) n--;
  fields.length = n;
}

/** Refuses a field count a row of `schema` cannot have: every column, or down to its first added-later one. */
function checkFieldCount(schema: TableSchema, count: number | string): void {
  const max = schema.columns.length;
  if (typeof count === 'number' && count < max && count >= fieldsMin(schema)) return;
  const min = fieldsMin(schema);
  // More fields than columns: a later release added columns and wrote values into them.
  const later = typeof count === 'number' && count > max ? ' (written by a later release that added columns: open the store with that release)' : '';
  throw new Error(`row of ${schema.name} has ${count} fields, schema has ${min === max ? max : `${min} to ${max}`}${later}`);
}

/** `freeze` is skipped for bulk loads (a snapshot's rows are never handed out mutable anyway: tables only replace rows). */
export function fieldsToRow(schema: TableSchema, fields: unknown, freeze = true): Row {
  if (!Array.isArray(fields)) checkFieldCount(schema, 'no');
  const given = (fields as unknown[]).length;
  if (given !== schema.columns.length) checkFieldCount(schema, given);
  const row: Record<string, Value> = {};
  for (let i = 0; i < schema.columns.length; i++) {
    const col = schema.columns[i]!;
    // A field left off is an added-later column at its default (checkFieldCount proved it).
    const v = (i < given ? (fields as unknown[])[i] : col.default) as Value;
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

/** Longest key encodedRowKey writes from the bytes; a longer one is decoded and encoded. */
const keyBytesMax = 1024;
const keyBytes = new KeyBytes(keyBytesMax);
/** Where each key column's value lies in the row being read, by key position (encodedRowKey's scratch). */
const keyPartStarts: number[] = [];
const keyPartEnds: number[] = [];

/**
 * The encoded key (key-codec.ts) of the row whose field array is buf[start, end) (one whole
 * msgpack value, as the caller found), read from the bytes: the key columns found, the other
 * fields skipped unread, and the key written straight from their bytes when KeyBytes takes them
 * (else decoded and encoded). `keyColumns` are column positions in key order: a primary key's,
 * or an index's columns. `suffix`, an encoded key, is appended (an index entry's primary key).
 * Checks the field count as fieldsToRow does. `parts` is the caller's scratch array (length =
 * key columns).
 */
export function encodedRowKey(schema: TableSchema, keyColumns: readonly number[], parts: Value[], buf: Buffer, start: number, end: number, suffix = ''): string {
  let p = start;
  const head = buf[p]!;
  let count: number;
  if (head >= 0x90 && head <= 0x9f) (count = head & 0x0f), (p += 1);
  else if (head === 0xdc && p + 3 <= end) (count = buf.readUInt16BE(p + 1)), (p += 3);
  else if (head === 0xdd && p + 5 <= end) (count = buf.readUInt32BE(p + 1)), (p += 5);
  else throw new Error(`row of ${schema.name} is not an array of fields`);
  if (count !== schema.columns.length) checkFieldCount(schema, count);
  // Fields past the last key column are not walked: the caller proved the row is one whole value.
  // Key columns are never added later (schema.ts), so they lie within the fields of any row.
  for (let i = 0, found = 0; found < keyColumns.length; i++) {
    const next = msgpackValueEnd(buf, p, end);
    if (next === undefined) throw new Error(`row of ${schema.name}: field ${i} is not a whole msgpack value`);
    const k = keyColumns.indexOf(i);
    if (k >= 0) (keyPartStarts[k] = p), (keyPartEnds[k] = next), found++;
    p = next;
  }
  keyBytes.clear();
  let written = true;
  for (let k = 0; written && k < keyColumns.length; k++) written = keyPartBytes(buf, keyPartStarts[k]!, keyPartEnds[k]!);
  if (written && (suffix === '' || keyBytes.encoded(suffix))) return keyBytes.take();
  for (let k = 0; k < keyColumns.length; k++) parts[k] = keyScalarAt(buf, keyPartStarts[k]!, keyPartEnds[k]!);
  return encodeKey(parts) + suffix;
}

/** Write the key part msgpack-encoded at buf[start, end) into keyBytes: false when it cannot take it. */
function keyPartBytes(buf: Buffer, start: number, end: number): boolean {
  const t = buf[start]!;
  if (t < 0x80) return keyBytes.integer(t); // positive fixint
  if (t >= 0xe0) return keyBytes.integer(t - 0x100); // negative fixint
  const header = stringHeaderBytes(t);
  if (header > 0) return keyBytes.string(buf, start + header, end);
  switch (t) {
    case 0xcc: return keyBytes.integer(buf[start + 1]!);
    case 0xcd: return keyBytes.integer(buf.readUInt16BE(start + 1));
    case 0xce: return keyBytes.integer(buf.readUInt32BE(start + 1));
    case 0xd0: return keyBytes.integer(buf.readInt8(start + 1));
    case 0xd1: return keyBytes.integer(buf.readInt16BE(start + 1));
    case 0xd2: return keyBytes.integer(buf.readInt32BE(start + 1));
    case 0xcb: return keyBytes.integer(buf.readDoubleBE(start + 1)); // integers past 32 bits; false unless a safe integer
    case 0xc0: return keyBytes.constant(null);
    case 0xc2: return keyBytes.constant(false);
    case 0xc3: return keyBytes.constant(true);
    default: return false; // 64-bit integers, float32, the rest: the one decoder decides
  }
}

/** Header bytes of a msgpack string whose first byte is `t` (fixstr, str 8/16/32); 0 when it is no string. */
function stringHeaderBytes(t: number): number {
  if (t >= 0xa0 && t <= 0xbf) return 1;
  return t === 0xd9 ? 2 : t === 0xda ? 3 : t === 0xdb ? 5 : 0;
}

/** A key column's value (string, integer or boolean) encoded at buf[start, end). */
function keyScalarAt(buf: Buffer, start: number, end: number): Value {
  const t = buf[start]!;
  if (t < 0x80) return t; // positive fixint
  const header = stringHeaderBytes(t);
  if (header > 0) return keyStringAt(buf, start, start + header, end);
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
