/**
 * AR observation surfaces: the latest observed state per surface (pose, anchors, payload,
 * observed-at) plus a bounded history of observations in arrival order. An observation
 * older than the latest (by observed_at_ms) joins the history without replacing the latest.
 * Past arHistoryPerSurfaceMax the oldest observation is evicted in the same transaction.
 * Removing a surface removes its history with it, in one transaction.
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { frameBytesMax } from '../storage/log/frame.js';
import { defineReducer, type TableReader } from '../storage/reducer.js';
import { txRowChangesMax } from '../storage/transaction.js';
import type { JsonValue, Row, TableSchema } from '../storage/schema.js';
import { cursorScope, decodeCursorAs, nextCursorField } from './cursor.js';
import { readTool, writeTool } from './define-tool.js';
import { rowId } from './identifiers.js';
import { boundJsonBytes } from './json-bytes.js';
import { collectPage, pageCursor, pageLimit } from './result-page.js';
import type { ToolDef } from './tool.js';
import { int, jsonObject } from './wire-schema.js';

export const arHistoryPerSurfaceMax = 100;
export const arSurfacesMax = 100_000;
/**
 * How far past the server's clock an observation's `observed_at_ms` may lie (device clocks
 * drift): the latest observation is the one with the greatest time, so one stamped far ahead
 * would stay a surface's state against every real observation after it.
 */
export const arObservedAheadMsMax = 5 * 60_000;
export const anchorsMax = 64;
/** UTF-8 bytes of JSON of one observation's payload. */
export const arPayloadBytesMax = 16 * 1024;
export const anchorLabelCharsMax = 256;
/** How far a pose's orientation may be from a unit quaternion: values rounded to one decimal pass. */
export const quaternionNormTolerance = 0.1;

/**
 * The most one observation row weighs in a log frame (msgpack): surface id, seq and times, pose
 * (7 float64), anchors at their limits (id, a label of 3-byte characters, pose, keys), the
 * payload (a JSON number of 4 bytes such as `0.1,` packs into 9), the recording subject (at most
 * 255 characters, server/auth's subjectCharsMax, 3 bytes each) and the row's framing.
 */
const arObservationRowBytesMax = 131 + 3 * 9 + 64 + anchorsMax * (131 + anchorLabelCharsMax * 3 + 3 + 64 + 32) + Math.ceil(arPayloadBytesMax * 9 / 4) + 255 * 3 + 128;
// ar_surface_remove deletes a surface and its whole history in one transaction: it must fit one
// frame (a quarter left for the invocation) and one transaction's row changes.
if ((arHistoryPerSurfaceMax + 1) * arObservationRowBytesMax > frameBytesMax * 0.75 || arHistoryPerSurfaceMax + 1 > txRowChangesMax) {
  throw new Error('arHistoryPerSurfaceMax: the rows ar_surface_remove deletes would not fit one transaction');
}

export const arSurfacesTable: TableSchema = {
  name: 'ar_surfaces',
  columns: [
    { name: 'surface', type: 'string' },
    { name: 'pose', type: 'json' },
    { name: 'anchors', type: 'json' },
    { name: 'payload', type: 'json' },
    { name: 'observed_at_ms', type: 'int' },
    { name: 'last_seq', type: 'int' },
    { name: 'updated_by', type: 'string' },
    // The offset of the transaction that made this surface (0 for one made before the column):
    // seqs start again at 1 when a removed surface is observed again, so an ar_history_list
    // cursor carries it to tell the new history from the one it paged.
    { name: 'created_offset', type: 'int', addedLater: true, default: 0 },
  ],
  primaryKey: ['surface'],
  rowsMax: arSurfacesMax,
};

export const arObservationsTable: TableSchema = {
  name: 'ar_observations',
  columns: [
    { name: 'surface', type: 'string' },
    { name: 'seq', type: 'int' },
    { name: 'pose', type: 'json' },
    { name: 'anchors', type: 'json' },
    { name: 'payload', type: 'json' },
    { name: 'observed_at_ms', type: 'int' },
    { name: 'recorded_at_ms', type: 'int' },
    { name: 'recorded_by', type: 'string' },
  ],
  primaryKey: ['surface', 'seq'],
};

const finite = z.number().finite();
/** [x, y, z, qx, qy, qz, qw]: position, then orientation as a unit quaternion (rounded or float32 values pass). */
const pose = z.array(finite).length(7).superRefine((p, issues) => {
  if (p.length !== 7) return;
  // A zero or scaled quaternion is no orientation: every reader would have to guess one.
  const norm = Math.hypot(p[3]!, p[4]!, p[5]!, p[6]!);
  if (Math.abs(norm - 1) > quaternionNormTolerance) {
    issues.addIssue({ code: 'custom', message: `the orientation [qx,qy,qz,qw] has norm ${norm}; a unit quaternion is required (norm 1 ± ${quaternionNormTolerance}; [0,0,0,1] is no rotation)` });
  }
});
const anchor = z.object({ id: rowId, pose: pose.optional(), label: z.string().max(anchorLabelCharsMax).optional() });
const anchorList = z.array(anchor).max(anchorsMax).superRefine((list, issues) => {
  const seen = new Set<string>();
  for (const [i, a] of list.entries()) {
    if (seen.has(a.id)) issues.addIssue({ code: 'custom', path: [i, 'id'], message: `anchor id ${a.id} appears twice; each anchor of an observation has its own id` });
    seen.add(a.id);
  }
});
const payload = jsonObject;

const observeArgs = z.object({
  surface: rowId,
  pose,
  anchors: anchorList.optional(),
  payload: payload.optional(),
  observed_at_ms: int(0).optional(),
});
const observeResult = z.object({ seq: int(), latest: z.boolean() });

export const arObserve = defineReducer({
  name: 'ar_observe',
  args: observeArgs,
  run(ctx, a): z.infer<typeof observeResult> {
    boundJsonBytes('payload', a.payload ?? {}, 'arPayloadBytesMax', arPayloadBytesMax);
    const surfaces = ctx.table('ar_surfaces');
    const current = surfaces.get([a.surface]);
    if (!current && surfaces.size >= arSurfacesMax) {
      throw new MemoryError('limit_exceeded', `surface ${a.surface} would be new; the tenant has ${surfaces.size} surfaces, the limit (arSurfacesMax) is ${arSurfacesMax}`,
        'remove surfaces no longer needed with ar_surface_remove (ar_surfaces_list with observed_before_ms finds those not observed lately; a history goes with its surface), or record observations of surfaces already observed');
    }
    const seq = current ? (current['last_seq'] as number) + 1 : 1;
    const observedAtMs = a.observed_at_ms ?? ctx.timestampMs;
    if (observedAtMs > ctx.timestampMs + arObservedAheadMsMax) {
      throw new MemoryError('invalid_argument', `observed_at_ms ${observedAtMs} is ${observedAtMs - ctx.timestampMs} ms past the server's clock (${ctx.timestampMs}); at most arObservedAheadMsMax = ${arObservedAheadMsMax} ms ahead is accepted`,
        'send the time the observation was made, in ms since the epoch (check the device clock), or leave observed_at_ms out for now');
    }
    const state = { pose: a.pose, anchors: a.anchors ?? [], payload: a.payload ?? {}, observed_at_ms: observedAtMs };
    const latest = !current || observedAtMs >= (current['observed_at_ms'] as number);
    const createdOffset = current ? current['created_offset'] as number : ctx.offset;
    surfaces.upsert(latest
      ? { surface: a.surface, ...state, last_seq: seq, updated_by: ctx.caller.subject, created_offset: createdOffset }
      : { ...current, last_seq: seq });
    const history = ctx.table('ar_observations');
    history.insert({ surface: a.surface, seq, ...state, recorded_at_ms: ctx.timestampMs, recorded_by: ctx.caller.subject });
    // Keep the newest arHistoryPerSurfaceMax by arrival: evict exactly the one that fell out.
    if (seq > arHistoryPerSurfaceMax) history.delete([a.surface, seq - arHistoryPerSurfaceMax]);
    return { seq, latest };
  },
});

function requireSurface(view: { table(name: string): TableReader }, surface: string): Row {
  const row = view.table('ar_surfaces').get([surface]);
  // A misspelt id is said as such, not an empty state or history.
  if (!row) throw new MemoryError('not_found', `surface ${surface} was never observed, or was removed`);
  return row;
}

const removeArgs = z.object({ surface: rowId });
const removeResult = z.object({ observations_removed: int() });

export const arSurfaceRemove = defineReducer({
  name: 'ar_surface_remove',
  args: removeArgs,
  run(ctx, a): z.infer<typeof removeResult> {
    requireSurface(ctx, a.surface);
    const history = ctx.table('ar_observations');
    // At most arHistoryPerSurfaceMax rows (checked against one frame above): one transaction.
    const seqs = [...history.scan({ prefix: [a.surface] })].map((r) => r['seq'] as number);
    for (const seq of seqs) history.delete([a.surface, seq]);
    ctx.table('ar_surfaces').delete([a.surface]);
    return { observations_removed: seqs.length };
  },
});

/**
 * The seq an ar_history_list cursor continues below, if the surface it paged is still there: a
 * surface removed and observed again numbers its history from 1 again, and a cursor going on
 * into it would list another history as if it were the one it began.
 */
function historyCursorSeq(scope: string, cursor: string, surface: string, createdOffset: number): number {
  const [pagedCreatedOffset, seq] = decodeCursorAs(scope, cursor, z.tuple([int(), int()]));
  if (pagedCreatedOffset !== createdOffset) {
    throw new MemoryError('invalid_argument', `cursor was issued for the history of surface ${surface} before it was removed; the surface there now was observed anew (at offset ${createdOffset}) and its history is another`,
      'start again without a cursor to list the history of the surface as it is now');
  }
  return seq;
}

function stateOf(row: Row): { pose: JsonValue; anchors: JsonValue; payload: JsonValue; observed_at_ms: number } {
  return { pose: row['pose'] as JsonValue, anchors: row['anchors'] as JsonValue, payload: row['payload'] as JsonValue, observed_at_ms: row['observed_at_ms'] as number };
}

export function arSurfaceView(view: { table(name: string): TableReader }, surface: string): ArSurfaceView | undefined {
  const row = view.table('ar_surfaces').get([surface]);
  return row ? { surface, ...stateOf(row), observations: row['last_seq'] as number } as ArSurfaceView : undefined;
}

// Outputs repeat what was stored; their schema stays loose to keep tools/list small.
const stateOutput = z.object({ pose: z.array(z.number()), anchors: z.array(jsonObject), payload, observed_at_ms: int() });
const surfaceOutput = stateOutput.extend({ surface: z.string(), observations: int() });
export type ArSurfaceView = z.infer<typeof surfaceOutput>;

export const arTools: ToolDef[] = [
  writeTool({
    reducer: arObserve, args: observeArgs, result: observeResult, title: 'Record AR observation',
    description: `Record an observation of a surface (pose: [x,y,z,qx,qy,qz,qw], a unit quaternion). Becomes the latest state unless older; history keeps ${arHistoryPerSurfaceMax}.`,
  }),
  readTool({
    name: 'ar_surface_get', title: 'Get AR surface', description: 'Latest observed state of a surface.',
    input: z.object({ surface: rowId }), output: surfaceOutput,
    run: ({ memory }, a) => memory.store.read((view) => {
      requireSurface(view, a.surface);
      return arSurfaceView(view, a.surface)!;
    }),
  }),
  readTool({
    name: 'ar_surfaces_list', title: 'List AR surfaces',
    description: 'Surfaces by id, each with its latest observed_at_ms (observed_before_ms: only those not observed since, e.g. to remove). Paged.',
    input: z.object({ observed_before_ms: int(0).optional(), cursor: pageCursor, limit: pageLimit }),
    output: z.object({ surfaces: z.array(z.object({ surface: z.string(), observed_at_ms: int(), observations: int() })), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const before = a.observed_before_ms ?? Number.MAX_SAFE_INTEGER;
      const scope = cursorScope(caller.tenant, 'ar_surfaces_list', before);
      const after = a.cursor === undefined ? undefined : decodeCursorAs(scope, a.cursor, z.string());
      // At most arSurfacesMax rows to pass over, however few the filter keeps.
      const rows = view.table('ar_surfaces').scan(after === undefined ? {} : { range: { from: [after] } });
      const page = collectPage((function* () {
        for (const r of rows) {
          const observedAtMs = r['observed_at_ms'] as number;
          if (r['surface'] !== after && observedAtMs < before) yield { surface: r['surface'] as string, observed_at_ms: observedAtMs, observations: r['last_seq'] as number };
        }
      })(), a.limit);
      return { surfaces: page.items, ...nextCursorField(scope, page, (s) => s.surface) };
    }),
  }),
  writeTool({
    reducer: arSurfaceRemove, args: removeArgs, result: removeResult, title: 'Remove AR surface', destructive: true, idempotent: true,
    description: 'Remove a surface with its history; frees its place under the tenant\'s surface limit.',
  }),
  readTool({
    name: 'ar_history_list', title: 'AR surface history', description: 'Recent observations of a surface, newest first. Paged.',
    input: z.object({ surface: rowId, cursor: pageCursor, limit: pageLimit }),
    output: z.object({ observations: z.array(stateOutput.extend({ seq: int() })), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const createdOffset = requireSurface(view, a.surface)['created_offset'] as number;
      const scope = cursorScope(caller.tenant, 'ar_history_list', a.surface);
      const before = a.cursor === undefined ? Number.MAX_SAFE_INTEGER : historyCursorSeq(scope, a.cursor, a.surface, createdOffset);
      const rows = view.table('ar_observations').scan({ range: { from: [a.surface], to: [a.surface, before] }, reverse: true });
      const page = collectPage((function* () { for (const r of rows) yield { seq: r['seq'] as number, ...stateOf(r) }; })(), a.limit);
      const observations = page.items as unknown as (z.infer<typeof stateOutput> & { seq: number })[];
      return { observations, ...nextCursorField(scope, page, (o) => [createdOffset, o.seq]) };
    }),
  }),
];

export const arReducers = [arObserve, arSurfaceRemove];
export const arTables = [arSurfacesTable, arObservationsTable];
