/**
 * The `tx` message: one transaction's changes for the queries of one connection. In JSON the
 * message is assembled from text made once per change and shared by every subscriber that
 * sees the change the same way (rows are immutable once stored, and the hub hands the same
 * event list to all of them), so a change fanned out to a thousand subscribers is serialised
 * once, not a thousand times; what each connection adds is its offset and query ids.
 */
import assert from 'node:assert/strict';
import type { RowChange } from '../../storage/changes.js';
import type { Row, TableSchema } from '../../storage/schema.js';
import { encodeMessage, wireRow, type WireFormat } from './wire-format.js';

/** One query's events in one transaction, in arrival order. */
export interface QueryChanges {
  readonly id: string;
  readonly schema: TableSchema;
  /** The hub's own (shared, never mutated) list until a second list arrives; then a copy of ours. */
  events: readonly RowChange[];
  owned: boolean;
}

export function queryChanges(id: string, schema: TableSchema, events: readonly RowChange[]): QueryChanges {
  return { id, schema, events, owned: false };
}

export function appendChanges(into: QueryChanges, changes: readonly RowChange[]): void {
  if (!into.owned) {
    into.events = into.events.slice();
    into.owned = true;
  }
  const events = into.events as RowChange[];
  for (const change of changes) events.push(change);
}

const rowJson = new WeakMap<Row, string>();

function jsonOf(schema: TableSchema, row: Row): string {
  let text = rowJson.get(row);
  if (text === undefined) rowJson.set(row, (text = JSON.stringify(wireRow(schema, row, 'json'))));
  return text;
}

/** Inserts as the new row, updates as the new row, deletes as the row that left. */
function wireLists(events: readonly RowChange[]): { inserted: Row[]; updated: Row[]; deleted: Row[] } {
  const lists = { inserted: [] as Row[], updated: [] as Row[], deleted: [] as Row[] };
  for (const e of events) {
    if (e.kind === 'insert') lists.inserted.push(e.row);
    else if (e.kind === 'update') lists.updated.push(e.row);
    else lists.deleted.push(e.oldRow);
  }
  return lists;
}

const listNames = ['inserted', 'updated', 'deleted'] as const;

/** `,"inserted":[…],"updated":[…],"deleted":[…]` as UTF-8, empty lists left out; cached per event list. */
const bodyJson = new WeakMap<readonly RowChange[], Buffer>();

function jsonBodyOf(changes: QueryChanges): Buffer {
  let body = bodyJson.get(changes.events);
  if (body !== undefined) return body;
  const lists = wireLists(changes.events);
  let text = '';
  for (const name of listNames) {
    const rows = lists[name];
    if (rows.length === 0) continue;
    text += `,"${name}":[`;
    for (let i = 0; i < rows.length; i++) text += (i > 0 ? ',' : '') + jsonOf(changes.schema, rows[i]!);
    text += ']';
  }
  body = Buffer.from(text, 'utf8');
  bodyJson.set(changes.events, body);
  return body;
}

/** Writes an ASCII string byte by byte: for the few short pieces of a message this beats Buffer#write's dispatch. */
function putAscii(out: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
  return at;
}

/**
 * `{"type":"tx","offset":N,"queries":[{"id":…,"inserted":[…],"updated":[…],"deleted":[…]}]}`;
 * empty lists omitted. JSON comes as UTF-8 bytes (sent as a text frame): the shared bodies are
 * copied in, so nothing per subscriber is serialised, measured or transcoded again.
 */
export function encodeTxMessage(format: WireFormat, offset: number, queries: readonly QueryChanges[]): Buffer {
  if (format === 'json') {
    // Everything but the bodies is ASCII: query ids match queryIdPattern (letters, digits,
    // _ . : -), so nothing in them needs escaping either.
    const head = `{"type":"tx","offset":${offset},"queries":[`;
    const bodies: Buffer[] = [];
    let bytes = head.length + 2;
    for (let i = 0; i < queries.length; i++) {
      const body = jsonBodyOf(queries[i]!);
      bodies.push(body);
      bytes += (i > 0 ? 1 : 0) + '{"id":"'.length + queries[i]!.id.length + 1 + body.length + 1;
    }
    const out = Buffer.allocUnsafe(bytes);
    let at = putAscii(out, 0, head);
    for (let i = 0; i < queries.length; i++) {
      if (i > 0) out[at++] = 0x2c; // ,
      at = putAscii(out, at, '{"id":"');
      at = putAscii(out, at, queries[i]!.id);
      out[at++] = 0x22; // "
      at += bodies[i]!.copy(out, at);
      out[at++] = 0x7d; // }
    }
    out[at++] = 0x5d; // ]
    out[at++] = 0x7d; // }
    assert.equal(at, bytes, 'tx message length');
    return out;
  }
  const out: Record<string, unknown>[] = [];
  for (const changes of queries) {
    const entry: Record<string, unknown> = { id: changes.id };
    const lists = wireLists(changes.events);
    for (const name of listNames) {
      if (lists[name].length > 0) entry[name] = lists[name].map((row) => wireRow(changes.schema, row, format));
    }
    out.push(entry);
  }
  return encodeMessage(format, { type: 'tx', offset, queries: out }) as Buffer;
}
