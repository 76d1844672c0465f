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
import { copyBytes, rowStart, type RowArena, type StoredRow } from '../row-arena.js';
import { MemoryError } from '../errors.js';
import { fieldsToRow, newRowPackr, packInPlace, packr, rowToFields, rowUnpackr } from '../row-codec.js';
import { frameBytesMax, frameHeaderBytes, openFrame, sealFrame } from './frame.js';
import { msgpackValueEnd } from '../msgpack-extent.js';
import type { Row, TableSchema } from '../schema.js';

const payloadFormatVersion = 2;

export function encodePayload(
  invocation: Invocation,
  changes: readonly TableChanges[],
  schemas: ReadonlyMap<string, TableSchema>,
): Buffer {
  return Buffer.concat(encodePayloadParts(invocation, changes, schemas));
}

/**
 * The payload as its two packed values (changes, invocation), for encodeFrameParts to copy once.
 * Each is a view of the encoder's own buffer that later packs do not overwrite (msgpackr moves
 * on past what it returned), so the parts stay valid.
 */
export function encodePayloadParts(
  invocation: Invocation,
  changes: readonly TableChanges[],
  schemas: ReadonlyMap<string, TableSchema>,
): [changes: Buffer, invocation: Buffer] {
  const encodedChanges = changes.map((c) => {
    const schema = schemas.get(c.table)!;
    return [c.table, c.deletes.map((r) => rowToFields(schema, r)), c.inserts.map((r) => rowToFields(schema, r))];
  });
  return [packr.pack([payloadFormatVersion, encodedChanges]), encodeInvocation(invocation)];
}

/** The invocation part of a payload (the second value). */
export function encodeInvocation(invocation: Invocation): Buffer {
  return packr.pack(invocationFields(invocation));
}

/**
 * Arguments as a frame gives them back (decodeInvocation): msgpack keeps no -0, for one, so a
 * retry's arguments are compared with the first call's in this form, not as the client sent them.
 */
export function argsAsStored(args: unknown): unknown {
  return rowUnpackr.unpack(packr.pack(args ?? null));
}

/** The encoder of invocations packed into frames (encodeStoredFrame): each is copied out at once. */
const invocationPackr = newRowPackr();

/** The invocation as the array its part holds. */
function invocationFields(invocation: Invocation): unknown[] {
  return [invocation.reducer, invocation.args ?? null, invocation.caller, invocation.timestampMs, invocation.idempotencyKey ?? null];
}

/** A key's change as a transaction leaves it: the rows before and after, and how the table stores(d) them. */
export interface StoredKeyChange {
  readonly old: Row | undefined;
  readonly row: Row | undefined;
  /** What the tree held before the transaction (an arena reference: its bytes are the old row's encoding). */
  readonly oldStored?: StoredRow | undefined;
  /** What the tree holds now. */
  readonly rowStored?: StoredRow | undefined;
}

/** Per table (by name, keys in order), as Transaction.netChanges gives them. */
export interface StoredTableChanges {
  readonly table: string;
  readonly keyChanges: readonly StoredKeyChange[];
}

/** What encodeStoredFrame needs of a table: its schema and the arena its references point into. */
export interface StoredRowSource {
  readonly schema: TableSchema;
  readonly arena: RowArena;
}

/**
 * The frame of one transaction (frame.ts) whose payload is its changes, written from the rows
 * as the tables store them, and its invocation: the same bytes as encodePayloadParts. A row held
 * as an arena reference is copied as it is, since the same encoder wrote those bytes; only rows
 * held as objects are packed. An update thus costs no second encoding of its new row and none of
 * its old one. Each byte is written once, into the frame (no buffer per part, no copy of one).
 * Refuses a payload larger than frameBytesMax (limit_exceeded) before allocating the frame.
 */
export function encodeStoredFrame(offset: number, net: readonly StoredTableChanges[], sources: ReadonlyMap<string, StoredRowSource>, invocation: Invocation): Buffer {
  const layout = storedChangesLayout(net, sources);
  // Packed into the encoder's own buffer and copied out below, before anything packs with it again.
  const packed = packInPlace(invocationPackr, invocationFields(invocation));
  const payloadBytes = layout.bytes + packed.end - packed.start;
  if (payloadBytes > frameBytesMax) {
    throw new MemoryError('limit_exceeded', `transaction of ${payloadBytes} bytes exceeds the frame limit of ${frameBytesMax}`);
  }
  const frame = openFrame(offset, payloadBytes);
  const at = writeStoredChanges(frame, frameHeaderBytes, net, sources, layout);
  // A native copy: copyBytes' JS loop, which wins for arena rows, was ~60 ns slower for this
  // ~120-byte invocation (3 runs of 20 alternated slices of 50k frames).
  frame.set(packed.subarray(packed.start, packed.end), at);
  return sealFrame(frame);
}

/** Where each row's bytes are (in the order the changes part writes them) and the part's length. */
interface StoredChangesLayout {
  readonly pieces: (Buffer | number)[];
  readonly bytes: number;
}

/**
 * Pass 1 of writing the changes part: where each row's bytes are, and the total length. Packed
 * object rows are views the encoder does not overwrite (msgpackr moves on past what it returned).
 */
function storedChangesLayout(net: readonly StoredTableChanges[], sources: ReadonlyMap<string, StoredRowSource>): StoredChangesLayout {
  const pieces: (Buffer | number)[] = [];
  let bytes = 1 + 1 + arrayHeaderBytes(net.length);
  for (const { table, keyChanges } of net) {
    const source = sources.get(table);
    if (!source) throw new Error(`payload: unknown table ${table}`);
    let deletes = 0;
    let inserts = 0;
    for (const c of keyChanges) if (c.old) deletes++;
    for (const c of keyChanges) if (c.row) inserts++;
    bytes += 1 + packedTableName(table).length + arrayHeaderBytes(deletes) + arrayHeaderBytes(inserts);
    for (let kind = 0; kind < 2; kind++) {
      for (const c of keyChanges) {
        const row = kind === 0 ? c.old : c.row;
        if (!row) continue;
        bytes += rowPiece(pieces, source, row, kind === 0 ? c.oldStored : c.rowStored);
      }
    }
  }
  return { pieces, bytes };
}

/** Pass 2: the headers and row bytes of the changes part into out[at, at + layout.bytes), in the order pass 1 met them; where it ends. */
function writeStoredChanges(out: Buffer, at: number, net: readonly StoredTableChanges[], sources: ReadonlyMap<string, StoredRowSource>, layout: StoredChangesLayout): number {
  const pieces = layout.pieces;
  let p = writeArrayHeader(out, at, 2);
  out[p++] = payloadFormatVersion;
  p = writeArrayHeader(out, p, net.length);
  let piece = 0;
  for (const { table, keyChanges } of net) {
    const arena = sources.get(table)!.arena;
    p = writeArrayHeader(out, p, 3);
    const name = packedTableName(table);
    copyBytes(out, p, name, 0, name.length);
    p += name.length;
    for (let kind = 0; kind < 2; kind++) {
      let count = 0;
      for (const c of keyChanges) if (kind === 0 ? c.old : c.row) count++;
      p = writeArrayHeader(out, p, count);
      for (let i = 0; i < count; i++) {
        const where = pieces[piece++]!;
        if (typeof where === 'number') {
          const chunk = arena.chunkOf(where);
          const length = pieces[piece++] as number;
          const start = rowStart(where);
          copyBytes(out, p, chunk, start, start + length);
          p += length;
        } else {
          copyBytes(out, p, where, 0, where.length);
          p += where.length;
        }
      }
    }
  }
  if (p !== at + layout.bytes) throw new Error(`payload: wrote ${p - at} bytes of ${layout.bytes}`);
  return p;
}

/** Record where one row's bytes are (reference and length, or its packing); returns their length. */
function rowPiece(pieces: (Buffer | number)[], source: StoredRowSource, row: Row, stored: StoredRow | undefined): number {
  if (typeof stored === 'number') {
    const chunk = source.arena.chunkOf(stored);
    const start = rowStart(stored);
    const length = source.arena.rowEnd(chunk, stored) - start;
    pieces.push(stored, length);
    return length;
  }
  const packed = packr.pack(rowToFields(source.schema, row));
  pieces.push(packed);
  return packed.length;
}

/** Table names are short printable ASCII (schema.ts tableNamePattern): one byte a character. */
const printableAscii = /^[\x21-\x7e]+$/;

/** The last table name packed, and its msgpack string (header and bytes): most commits change one table, the same as the last. */
let lastPackedName = '';
let lastPackedNameBytes: Buffer = Buffer.alloc(0);

/** `table` as a msgpack string (fixstr or str8), checked short printable ASCII once, not at every commit. */
function packedTableName(table: string): Buffer {
  if (table === lastPackedName && lastPackedNameBytes.length > 0) return lastPackedNameBytes;
  if (!(table.length < 0x100) || !printableAscii.test(table)) throw new Error(`payload: table name ${JSON.stringify(table)} is not short ASCII`);
  const header = table.length < 0x20 ? [0xa0 | table.length] : [0xd9, table.length];
  lastPackedNameBytes = Buffer.concat([Buffer.from(header), Buffer.from(table, 'latin1')]);
  lastPackedName = table;
  return lastPackedNameBytes;
}

function arrayHeaderBytes(n: number): number {
  return n < 0x10 ? 1 : n < 0x10000 ? 3 : 5;
}

function writeArrayHeader(buf: Buffer, p: number, n: number): number {
  if (n < 0x10) {
    buf[p] = 0x90 | n;
    return p + 1;
  }
  if (n < 0x10000) {
    buf[p] = 0xdc;
    buf.writeUInt16BE(n, p + 1);
    return p + 3;
  }
  buf[p] = 0xdd;
  buf.writeUInt32BE(n, p + 1);
  return p + 5;
}

/** The same bytes as a Buffer, without a copy. */
function bufferView(payload: Uint8Array): Buffer {
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

/** The row changes alone (replay): the invocation that follows them is not decoded. */
export function decodeChanges(offset: number, payload: Uint8Array, schemas: ReadonlyMap<string, TableSchema>): TableChanges[] {
  const buf = bufferView(payload);
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
  return { offset, invocation: decodeInvocation(offset, payload), changes: decodeChanges(offset, payload, schemas) };
}

/** The invocation alone: it follows the changes, whose extent is found without decoding them. */
export function decodeInvocation(offset: number, payload: Uint8Array): Invocation {
  const buf = bufferView(payload);
  const changesEnd = msgpackValueEnd(buf, 0, buf.length);
  if (changesEnd === undefined || changesEnd >= buf.length) throw new Error(`payload at offset ${offset}: no invocation after the changes`);
  // Strict: msgpackr refuses bytes left after the one value.
  const inv = rowUnpackr.unpack(buf, { start: changesEnd, end: buf.length }) as unknown;
  if (!Array.isArray(inv) || inv.length !== 5) throw new Error(`payload at offset ${offset}: malformed invocation`);
  const [reducer, args, caller, timestampMs, idempotencyKey] = inv as [string, unknown, Caller, number, string | null];
  return idempotencyKey === null
    ? { reducer, args, caller, timestampMs }
    : { reducer, args, caller, timestampMs, idempotencyKey };
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

/**
 * Receives a frame's row changes as the byte ranges of their encoded field arrays, in payload
 * order: per table, its name, then its deleted rows, then its inserted rows.
 */
export interface EncodedChangesVisitor {
  table(name: string): void;
  deleted(buf: Buffer, start: number, end: number): void;
  inserted(buf: Buffer, start: number, end: number): void;
}

/**
 * Walk the row changes of the payload at [start, end) of `buf` without decoding a row (replay
 * keeps rows encoded): only the array headers, the format version and the table names are read.
 * Throws on anything that is not the changes layout.
 */
export function visitChangesAt(offset: number, buf: Buffer, start: number, end: number, visitor: EncodedChangesVisitor): void {
  // No closures here: this runs once per replayed frame (and tsx wraps each closure it makes).
  let p = start;
  let n = arrayLengthAt(buf, p, end);
  if (n !== 2 || buf[(p = arrayEnd)] !== payloadFormatVersion) throw new Error(`payload at offset ${offset}: unknown format`);
  n = arrayLengthAt(buf, p + 1, end);
  if (n < 0) throw layoutError(offset, p + 1 - start);
  p = arrayEnd;
  for (let tables = n; tables > 0; tables--) {
    if (arrayLengthAt(buf, p, end) !== 3) throw layoutError(offset, p - start);
    p = arrayEnd;
    const nameEnd = msgpackValueEnd(buf, p, end);
    if (nameEnd === undefined) throw layoutError(offset, p - start);
    visitor.table(tableNameAt(buf, p, nameEnd, offset));
    p = nameEnd;
    for (let kind = 0; kind < 2; kind++) {
      let rows = arrayLengthAt(buf, p, end);
      if (rows < 0) throw layoutError(offset, p - start);
      p = arrayEnd;
      for (; rows > 0; rows--) {
        const rowEnd = msgpackValueEnd(buf, p, end);
        if (rowEnd === undefined) throw layoutError(offset, p - start);
        if (kind === 0) visitor.deleted(buf, p, rowEnd);
        else visitor.inserted(buf, p, rowEnd);
        p = rowEnd;
      }
    }
  }
}

/** Where the array header read by the last arrayLengthAt ends. */
let arrayEnd = 0;

/** Element count of the array header at buf[p] (its end in arrayEnd), or -1 when there is none. */
function arrayLengthAt(buf: Buffer, p: number, end: number): number {
  if (p >= end) return -1;
  const t = buf[p]!;
  if (t >= 0x90 && t <= 0x9f) return (arrayEnd = p + 1), t & 0x0f;
  if (t === 0xdc && p + 3 <= end) return (arrayEnd = p + 3), buf.readUInt16BE(p + 1);
  if (t === 0xdd && p + 5 <= end) return (arrayEnd = p + 5), buf.readUInt32BE(p + 1);
  return -1;
}

function layoutError(offset: number, at: number): Error {
  return new Error(`payload at offset ${offset}: changes are not in the expected layout (byte ${at} of the payload)`);
}

/** The last table name read and its bytes: frames in a run mostly change the same table. */
let lastName = '';
let lastNameBytes: Buffer = Buffer.alloc(0);

function tableNameAt(buf: Buffer, start: number, end: number, offset: number): string {
  const length = end - start;
  if (length === lastNameBytes.length) {
    let same = true;
    for (let i = 0; i < length && same; i++) same = buf[start + i] === lastNameBytes[i];
    if (same) return lastName;
  }
  const name = rowUnpackr.unpack(buf, { start, end }) as unknown;
  if (typeof name !== 'string') throw new Error(`payload at offset ${offset}: a table name is not a string`);
  lastName = name;
  lastNameBytes = Buffer.from(buf.subarray(start, end));
  return name;
}
