/**
 * Read tools over objects: find (type + attribute predicates, ordered, paged with an opaque
 * cursor), neighbours (depth-bounded breadth-first walk of relations), history (the version
 * table, with attribute images read back from the commitlog on request) and as-of reads.
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import type { TxRecord } from '../storage/changes.js';
import type { ReadView } from '../storage/reducer.js';
import type { JsonValue, Row } from '../storage/schema.js';
import type { StoreApi } from '../storage/store.js';
import {
  attributeAt, attributeOrder, attributePredicates, canonicalJson, checkPredicates, compareJson, matchesAll,
  type AttributeOrder, type AttributePredicate,
} from './attribute-predicate.js';
import { cursorScope, decodeCursorAs, encodeCursor, jsonFingerprint } from './cursor.js';
import { readTool } from './define-tool.js';
import { objectId, typeName } from './identifiers.js';
import { jsonBytes } from './json-bytes.js';
import { objectView, objectVersionsKeptMax, requireObject } from './objects.js';
import { collectPage, pageCursor, pageItemsBytesMax, pageLimit } from './result-page.js';
import { pageSizeDefault, pageSizeMax, type ToolDef } from './tool.js';
import { int, jsonObject } from './wire-schema.js';

/** Objects of one type examined by one object_find page: an unordered page ends there (with a cursor), an ordered find is refused past it. */
export const findScanRowsMax = 100_000;
export const neighborDepthMax = 4;
/** Relations examined by one object_neighbors walk before it stops and says truncated. */
export const neighborRelationsScannedMax = 20_000;
export const neighborKindsMax = 16;
/** Versions with attribute images per history page (each image is one log read). */
export const historyImagesPerPageMax = 20;

const attributes = jsonObject;
const objectOutput = z.object({ id: z.string(), type: z.string(), attributes, version: int() });

// ---- object_find

/**
 * UTF-8 bytes of JSON of a sort value a find cursor carries as is. A longer one travels as its
 * digest and the next page resumes just after its object, found by id: the cursor stays within
 * cursorCharsMax whatever the value.
 */
export const cursorSortValueBytesMax = 1024;

/**
 * Where a find page ended: the id and the sort value (v), absent when the object lacks the
 * attribute, or only its digest (h) when it is longer than cursorSortValueBytesMax.
 */
const findPosition = z.object({ id: z.string(), v: z.unknown().optional(), absent: z.boolean().optional(), h: z.string().optional() });
type FindPosition = z.infer<typeof findPosition>;

function findPositionOf(row: Row, order: AttributeOrder | undefined): JsonValue {
  const key = sortKey(row, order);
  if (key.v === undefined) return { id: key.id, absent: true };
  if (jsonBytes(key.v) > cursorSortValueBytesMax) return { id: key.id, h: jsonFingerprint(key.v) };
  return { id: key.id, v: key.v as JsonValue };
}

/** Index of the first sorted match after the cursor's position. */
function resumeIndex(matches: readonly Row[], order: AttributeOrder, after: FindPosition, textOf: (value: unknown) => string): number {
  if (after.h !== undefined) {
    // Only a digest of the value: resume after the object itself, which must still sort where it did.
    const at = matches.findIndex((row) => row['id'] === after.id);
    if (at < 0 || jsonFingerprint(sortKey(matches[at]!, order).v) !== after.h) {
      throw new MemoryError('invalid_argument', `cursor: object ${after.id}, where the last page ended, has changed its ${order.path} or no longer matches`,
        'start again without a cursor');
    }
    return at + 1;
  }
  const afterKey = { v: after.absent ? undefined : after.v, id: after.id };
  const desc = order.desc === true;
  // First row strictly after the cursor's position (binary search over the sorted matches).
  let lo = 0;
  let hi = matches.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(sortKey(matches[mid]!, order), afterKey, desc, textOf) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * canonicalJson memoised by value for one find: a comparison sort asks for each array or object
 * value's text about 2 log2(n) times, and serialising it each time made ordering by such an
 * attribute cost that many times the scan (the rows are decoded once per find, so each value is
 * one object for the whole sort).
 */
function canonicalTextMemo(): (value: unknown) => string {
  const texts = new Map<unknown, string>();
  return (value) => {
    let text = texts.get(value);
    if (text === undefined) {
      text = canonicalJson(value);
      texts.set(value, text);
    }
    return text;
  };
}

function sortKey(row: Row, order: AttributeOrder | undefined): { v: unknown; id: string } {
  return { v: order ? attributeAt(row['attributes'], order.path) : undefined, id: row['id'] as string };
}

function compareKeys(a: { v: unknown; id: string }, b: { v: unknown; id: string }, desc: boolean, textOf?: (value: unknown) => string): number {
  const byValue = compareJson(a.v, b.v, textOf);
  if (byValue !== 0) return desc ? -byValue : byValue;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * One page of a find: its rows, whether more may follow, and the row the next page resumes
 * after (the last one returned, or the last one examined when the page stopped at
 * findScanRowsMax: an unordered page that examined that many ends there, with what matched).
 */
function findPage(view: ReadView, type: string, where: readonly AttributePredicate[], order: AttributeOrder | undefined,
  after: FindPosition | undefined, limit: number | undefined): { rows: Row[]; more: boolean; resumeAfter?: Row } {
  const objects = view.table('objects');
  if (!order) {
    // Index order is (type, id): page lazily from just after the cursor's id.
    const range = after ? { from: [type, after.id], to: [type], toInclusive: true } : { from: [type], to: [type], toInclusive: true };
    let examined = 0;
    let lastExamined: Row | undefined;
    let stopped = false;
    const source = (function* () {
      for (const row of objects.scan({ index: 'objects_by_type', range })) {
        if (after && row['id'] === after.id) continue;
        if (examined === findScanRowsMax) {
          stopped = true;
          return;
        }
        examined++;
        lastExamined = row;
        if (matchesAll(row['attributes'], where)) yield row;
      }
    })();
    const page = collectPage(source, limit);
    if (page.more) return { rows: page.items, more: true, ...(page.items.length > 0 ? { resumeAfter: page.items.at(-1)! } : {}) };
    return stopped ? { rows: page.items, more: true, resumeAfter: lastExamined! } : { rows: page.items, more: false };
  }
  // Sorting needs every match: every object of the type is read, each page.
  const matches: Row[] = [];
  let examined = 0;
  for (const row of objects.scan({ index: 'objects_by_type', prefix: [type] })) {
    if (++examined > findScanRowsMax) {
      throw new MemoryError('limit_exceeded', `object_find with order_by sorts every object of type ${type}, which has more than ${findScanRowsMax} (findScanRowsMax)`,
        'leave out order_by (pages in id order have no such bound), or keep such objects under narrower types');
    }
    if (matchesAll(row['attributes'], where)) matches.push(row);
  }
  const desc = order.desc === true;
  const textOf = canonicalTextMemo();
  matches.sort((a, b) => compareKeys(sortKey(a, order), sortKey(b, order), desc, textOf));
  const start = after ? resumeIndex(matches, order, after, textOf) : 0;
  const page = collectPage(matches.slice(start, start + (limit ?? pageSizeDefault) + 1), limit);
  return { rows: page.items, more: page.more, ...(page.items.length > 0 ? { resumeAfter: page.items.at(-1)! } : {}) };
}

const findInput = z.object({
  type: typeName,
  where: attributePredicates.optional(),
  order_by: attributeOrder.optional(),
  cursor: pageCursor,
  limit: pageLimit,
});

const objectFind = readTool({
  name: 'object_find',
  title: 'Find objects',
  // Ordered pages are keyset pages over a mutable (value, id), computed afresh each page; id order follows the index.
  description: 'Objects of a type matching all predicates (eq ne lt lte gt gte in exists; dotted path), optionally ordered. Paged; ordered pages may repeat or miss objects written between them.',
  input: findInput,
  output: z.object({ objects: z.array(objectOutput), next_cursor: z.string().optional() }),
  run: ({ memory, caller }, a) => memory.store.read((view) => {
    const where = a.where ?? [];
    checkPredicates(where);
    const scope = cursorScope(caller.tenant, 'object_find', { type: a.type, where, order: a.order_by ?? null });
    const after = a.cursor === undefined ? undefined : decodeCursorAs(scope, a.cursor, findPosition);
    const { rows, more, resumeAfter } = findPage(view, a.type, where, a.order_by, after, a.limit);
    const objects = rows.map(objectView);
    if (!more || !resumeAfter) return { objects };
    return { objects, next_cursor: encodeCursor(scope, findPositionOf(resumeAfter, a.order_by)) };
  }),
});

// ---- object_neighbors

const neighborsInput = z.object({
  id: objectId,
  direction: z.enum(['out', 'in', 'both']).optional(),
  kinds: z.array(typeName).max(neighborKindsMax).optional(),
  depth: int(1, neighborDepthMax).optional(),
  limit: pageLimit,
});

const edge = z.object({ src: z.string(), kind: z.string(), dst: z.string() });
const neighborsOutput = z.object({
  nodes: z.array(z.object({ id: z.string(), type: z.string(), depth: int() })),
  edges: z.array(edge),
  truncated: z.boolean(),
});

const objectNeighbors = readTool({
  name: 'object_neighbors',
  title: 'Object neighbours',
  description: 'Objects related to an object: relations out, in or both, optional kinds, up to depth hops (breadth-first, limit nodes).',
  input: neighborsInput,
  output: neighborsOutput,
  run: ({ memory }, a) => memory.store.read((view) => {
    requireObject(view, a.id);
    const direction = a.direction ?? 'out';
    const kinds = a.kinds && a.kinds.length > 0 ? new Set(a.kinds) : undefined;
    const depthMax = a.depth ?? 1;
    const nodesMax = a.limit ?? pageSizeDefault;
    // Edges are bounded with nodes: a page never carries more than a few edges per node.
    const edgesMax = Math.min(nodesMax * 4, pageSizeMax * 4);
    // And by bytes: 200 nodes and 800 edges of 128-character ids and 64-character kinds are
    // more than resultBytesMax, which define-tool refuses as limit_exceeded.
    let itemBytes = 0;
    const relations = view.table('relations');
    const objects = view.table('objects');
    const seen = new Set([a.id]);
    const nodes: z.infer<typeof neighborsOutput>['nodes'] = [];
    const edges: z.infer<typeof edge>[] = [];
    const edgeKeys = new Set<string>();
    let frontier = [a.id];
    let scanned = 0;
    let truncated = false;
    for (let depth = 1; depth <= depthMax && frontier.length > 0 && !truncated; depth++) {
      const next: string[] = [];
      for (const id of frontier) {
        const sources = [
          ...(direction !== 'in' ? [relations.scan({ prefix: [id] })] : []),
          ...(direction !== 'out' ? [relations.scan({ index: 'relations_by_dst', prefix: [id] })] : []),
        ];
        for (const source of sources) {
          for (const r of source) {
            if (++scanned > neighborRelationsScannedMax) { truncated = true; break; }
            const kind = r['kind'] as string;
            if (kinds && !kinds.has(kind)) continue;
            const src = r['src'] as string;
            const dst = r['dst'] as string;
            const other = src === id ? dst : src;
            if (!seen.has(other)) {
              if (nodes.length >= nodesMax) { truncated = true; break; }
              const row = objects.get([other]);
              if (!row) continue;
              const node = { id: other, type: row['type'] as string, depth };
              const bytes = jsonBytes(node) + 1;
              if (itemBytes + bytes > pageItemsBytesMax) { truncated = true; break; }
              itemBytes += bytes;
              seen.add(other);
              nodes.push(node);
              next.push(other);
            }
            const edgeKey = `${src}\u0000${kind}\u0000${dst}`;
            if (!edgeKeys.has(edgeKey)) {
              if (edges.length >= edgesMax) { truncated = true; break; }
              const e = { src, kind, dst };
              const bytes = jsonBytes(e) + 1;
              if (itemBytes + bytes > pageItemsBytesMax) { truncated = true; break; }
              itemBytes += bytes;
              edgeKeys.add(edgeKey);
              edges.push(e);
            }
          }
          if (truncated) break;
        }
        if (truncated) break;
      }
      frontier = next;
    }
    return { nodes, edges, truncated };
  }),
});

// ---- object_history and object_get_as_of

interface VersionRow {
  version: number;
  offset: number;
  op: string;
  reducer: string;
  subject: string;
  at_ms: number;
}

function versionRow(row: Row): VersionRow {
  return {
    version: row['version'] as number,
    offset: row['offset'] as number,
    op: row['op'] as string,
    reducer: row['reducer'] as string,
    subject: row['subject'] as string,
    at_ms: row['at_ms'] as number,
  };
}

/** The object's row as written by the transaction at tx (the image of that version). */
function imageIn(tx: TxRecord, id: string): Row | undefined {
  return tx.changes.find((c) => c.table === 'objects')?.inserts.find((r) => r['id'] === id);
}

async function readImage(store: StoreApi, id: string, offset: number): Promise<Row | undefined> {
  const tx = await store.readTx(offset);
  if (!tx) return undefined;
  const image = imageIn(tx, id);
  if (!image) throw new Error(`log offset ${offset} holds no image of object ${id} although object_versions says so`);
  return image;
}

const historyEntry = z.object({
  version: int(),
  offset: int(),
  op: z.string(),
  reducer: z.string(),
  caller: z.string(),
  at_ms: int(),
  type: z.string().optional(),
  attributes: attributes.optional(),
  image: z.enum(['log', 'current', 'gone']).optional(),
});

const objectHistory = readTool({
  name: 'object_history',
  title: 'Object history',
  description: 'Versions of an object, newest first: offset, op, reducer, caller, time; include_attributes adds their attributes. Paged.',
  input: z.object({ id: objectId, include_attributes: z.boolean().optional(), cursor: pageCursor, limit: pageLimit }),
  output: z.object({ id: z.string(), versions: z.array(historyEntry), trimmed: z.boolean(), next_cursor: z.string().optional() }),
  async run({ memory, caller }, a) {
    const scope = cursorScope(caller.tenant, 'object_history', { id: a.id, images: a.include_attributes === true });
    const before = a.cursor === undefined ? undefined : decodeCursorAs(scope, a.cursor, int(1));
    const limit = a.include_attributes ? Math.min(a.limit ?? historyImagesPerPageMax, historyImagesPerPageMax) : a.limit;
    const { rows, more, current, trimmed } = await memory.store.read((view) => {
      const versions = view.table('object_versions');
      const range = before === undefined ? { from: [a.id], to: [a.id], toInclusive: true } : { from: [a.id], to: [a.id, before] };
      const page = collectPage(versions.scan({ range, reverse: true }), limit);
      let oldest: Row | undefined;
      for (const r of versions.scan({ prefix: [a.id], limit: 1 })) oldest = r;
      if (!oldest) throw new MemoryError('not_found', `object ${a.id} has no history`);
      return {
        rows: page.items.map(versionRow),
        more: page.more,
        current: view.table('objects').get([a.id]),
        trimmed: (oldest['version'] as number) > 1,
      };
    });
    const entries: z.infer<typeof historyEntry>[] = [];
    for (const v of rows) {
      const entry: z.infer<typeof historyEntry> = { version: v.version, offset: v.offset, op: v.op, reducer: v.reducer, caller: v.subject, at_ms: v.at_ms };
      if (a.include_attributes && v.op !== 'delete') {
        const image = current && current['version'] === v.version ? current : await readImage(memory.store, a.id, v.offset);
        if (image) Object.assign(entry, { type: image['type'], attributes: image['attributes'], image: image === current ? 'current' : 'log' });
        else entry.image = 'gone';
      }
      entries.push(entry);
    }
    // Images can be large: re-bound the page by bytes, continuing after the last entry kept.
    const page = collectPage(entries, entries.length || 1);
    const last = page.items.at(-1);
    const hasMore = more || page.more;
    return hasMore && last
      ? { id: a.id, versions: page.items, trimmed, next_cursor: encodeCursor(scope, last.version) }
      : { id: a.id, versions: page.items, trimmed };
  },
});

const objectGetAsOf = readTool({
  name: 'object_get_as_of',
  title: 'Get object as of offset',
  description: 'Read an object as it was at a commit offset (the newest version written at or before it).',
  input: z.object({ id: objectId, offset: int(0) }),
  output: objectOutput.extend({ offset: int(), at_ms: int() }),
  async run({ memory }, a) {
    const found = await memory.store.read((view) => {
      if (a.offset > view.offset) {
        throw new MemoryError('invalid_argument', `offset ${a.offset} is beyond the last committed offset ${view.offset}`);
      }
      let oldest: VersionRow | undefined;
      let scanned = 0;
      for (const r of view.table('object_versions').scan({ prefix: [a.id], reverse: true })) {
        const v = versionRow(r);
        if (v.offset <= a.offset) return { version: v, current: view.table('objects').get([a.id]) };
        oldest = v;
        if (++scanned > objectVersionsKeptMax) break;
      }
      if (oldest && oldest.version > 1) {
        throw new MemoryError('not_found', `history of object ${a.id} before offset ${oldest.offset} was trimmed (${objectVersionsKeptMax} versions are kept)`);
      }
      throw new MemoryError('not_found', `object ${a.id} did not exist at offset ${a.offset}`);
    });
    const v = found.version;
    if (v.op === 'delete') {
      throw new MemoryError('not_found', `object ${a.id} was deleted at offset ${v.offset} (version ${v.version})`);
    }
    const image = found.current && found.current['version'] === v.version ? found.current : await readImage(memory.store, a.id, v.offset);
    if (!image) {
      throw new MemoryError('not_found', `version ${v.version} of object ${a.id} (offset ${v.offset}) is no longer in the log: it was compacted into a snapshot`,
        'object_history still lists the version without its attributes');
    }
    return { ...objectView(image), offset: v.offset, at_ms: v.at_ms };
  },
});

export const queryTools: ToolDef[] = [objectFind, objectNeighbors, objectHistory, objectGetAsOf];
