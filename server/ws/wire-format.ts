/**
 * How messages travel: JSON text frames by default, msgpack binary frames when the client
 * asks for subprotocol `ioboxx.v1.msgpack`. Rows go out as plain objects keyed by column:
 * vectors as arrays of numbers, bytes as base64 strings in JSON (msgpack `bin` in msgpack),
 * everything else as the store holds it. A client may send either kind of frame.
 */
import { Packr } from 'msgpackr';
import { MemoryError } from '../../storage/errors.js';
import type { Row, TableSchema } from '../../storage/schema.js';

export type WireFormat = 'json' | 'msgpack';

export const protocolVersion = 'ioboxx.v1';
/** Sec-WebSocket-Protocol values we accept, and the format each selects. */
export const subprotocols: ReadonlyMap<string, WireFormat> = new Map([
  [protocolVersion, 'json'],
  [`${protocolVersion}.json`, 'json'],
  [`${protocolVersion}.msgpack`, 'msgpack'],
]);

// Plain maps both ways: no records or shared structures a non-JS client could not read.
// 64-bit integers decode as numbers: other encoders (Go's, by default) write every int64 in
// 9 bytes, and an offset or a where value must not arrive as a BigInt. One past 2^53 becomes
// a number that is no safe integer, refused as such.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' });

export function encodeMessage(format: WireFormat, message: object): string | Buffer {
  return format === 'json' ? JSON.stringify(message) : packr.pack(message);
}

export function encodedBytes(data: string | Buffer): number {
  return typeof data === 'string' ? Buffer.byteLength(data) : data.length;
}

/** A client frame as a value; a frame that does not decode is invalid_argument (answered, not fatal). */
export function decodeClientMessage(data: Buffer, isBinary: boolean): unknown {
  try {
    return isBinary ? (packr.unpack(data) as unknown) : (JSON.parse(data.toString('utf8')) as unknown);
  } catch {
    throw new MemoryError('invalid_argument', isBinary ? 'the binary frame is not msgpack' : 'the text frame is not JSON');
  }
}

const wireRows: Record<WireFormat, WeakMap<Row, Record<string, unknown>>> = { json: new WeakMap(), msgpack: new WeakMap() };

const converted = new WeakMap<TableSchema, boolean>();

/** True when rows of this table need converting (vector or bytes columns). */
export function needsConversion(schema: TableSchema): boolean {
  let needs = converted.get(schema);
  if (needs === undefined) converted.set(schema, (needs = schema.columns.some((c) => c.type === 'vector' || c.type === 'bytes')));
  return needs;
}

/**
 * A row as it goes on the wire. Stored rows are immutable, so the conversion is cached per
 * row object: a change delivered to a thousand subscribers is converted once.
 */
export function wireRow(schema: TableSchema, row: Row, format: WireFormat): Readonly<Record<string, unknown>> {
  if (!needsConversion(schema)) return row;
  const cache = wireRows[format];
  const cached = cache.get(row);
  if (cached) return cached;
  const out: Record<string, unknown> = { ...row };
  for (const c of schema.columns) {
    const value = row[c.name];
    if (c.type === 'vector' && value instanceof Float32Array) out[c.name] = Array.from(value);
    else if (c.type === 'bytes' && value instanceof Uint8Array && format === 'json') out[c.name] = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  }
  cache.set(row, out);
  return out;
}
