/**
 * The tenant's access log: one row per tool call and resource read (allowed or denied),
 * appended by the server through the system reducer `access_log_append`. It keeps the
 * newest accessLogRowsMax rows (the oldest is evicted in the appending transaction); the
 * audit stager copies rows to Postgres before they age out.
 */
import { z } from 'zod';
import { defineReducer } from '../storage/reducer.js';
import type { Row, TableSchema } from '../storage/schema.js';
import { cursorScope, decodeCursorAs, nextCursorField } from './cursor.js';
import { readTool } from './define-tool.js';
import { collectPage, pageCursor, pageLimit } from './result-page.js';
import type { ToolDef } from './tool.js';
import { int } from './wire-schema.js';

export const accessLogRowsMax = 100_000;
export const accessLogObjectIdsMax = 100;
export const accessLogFieldCharsMax = 1024;

/** Columns fixed by the audit stager. */
export const accessLogTable: TableSchema = {
  name: 'access_log',
  columns: [
    { name: 'seq', type: 'int' },
    { name: 'at_ms', type: 'int' },
    { name: 'subject', type: 'string' },
    { name: 'action', type: 'string' },
    { name: 'target', type: 'string' },
    { name: 'object_ids', type: 'json' },
    { name: 'offset', type: 'int', nullable: true },
    { name: 'outcome', type: 'string' },
  ],
  primaryKey: ['seq'],
};

const field = z.string().max(accessLogFieldCharsMax);
/**
 * Entries one append may carry. The server coalesces the rows of calls answered meanwhile into
 * one append (one transaction for many calls); at the field bounds the frame stays far below
 * frameBytesMax.
 */
export const accessLogAppendEntriesMax = 256;

const entryArgs = z.object({
  subject: field.min(1),
  action: field.min(1), // e.g. tools/call, resources/read
  target: field, // the tool name or the URI
  object_ids: z.array(field).max(accessLogObjectIdsMax).optional(),
  offset: int(0).nullable().optional(),
  outcome: field.min(1), // ok, or an error code such as forbidden
  /** When the call was answered; defaults to the appending transaction's time. */
  at_ms: int(0).optional(),
});

/**
 * A batch of entries in order, or one entry (the original form, still in older commitlogs). The
 * batch form is tried first: the server sends only batches, and a union tries its options in
 * order (a failed single-entry try built an issue per missing field on every append).
 */
const appendArgs = z.union([z.object({ entries: z.array(entryArgs).min(1).max(accessLogAppendEntriesMax) }), entryArgs]);

export type AccessLogEntry = z.infer<typeof entryArgs>;

/** System reducer (no tool): the server appends one row per tool call and resource read. */
export const accessLogAppend = accessLogAppendKeeping(accessLogRowsMax);

/** The append reducer keeping the newest `rowsMax` rows (tests use a small bound to watch eviction). */
export function accessLogAppendKeeping(rowsMax: number) {
  return defineReducer({
    name: 'access_log_append',
    args: appendArgs,
    // The table keeps its newest rowsMax rows: a tenant at its row bytes limit still gets its audit rows.
    passesRowLimit: true,
    /** `seq` of the last row appended; `first_seq` of the first (the same for one entry). */
    run(ctx, a): { seq: number; first_seq: number } {
      const entries = 'entries' in a ? a.entries : [a];
      const log = ctx.table('access_log');
      let next = 1;
      for (const last of log.scan({ reverse: true, limit: 1 })) next = (last['seq'] as number) + 1;
      const firstSeq = next;
      for (const e of entries) {
        log.insert({
          seq: next++, at_ms: e.at_ms ?? ctx.timestampMs, subject: e.subject, action: e.action, target: e.target,
          object_ids: e.object_ids ?? [], offset: e.offset ?? null, outcome: e.outcome,
        });
      }
      // Over the bound after the inserts: evict the oldest, deterministically (collected first:
      // no deletes under a live scan).
      const excess = log.size - rowsMax;
      if (excess > 0) {
        const oldest = [...log.scan({ limit: excess })].map((row) => row['seq'] as number);
        for (const seq of oldest) log.delete([seq]);
      }
      return { seq: next - 1, first_seq: firstSeq };
    },
  });
}

function entryView(row: Row): z.infer<typeof entry> {
  return {
    seq: row['seq'] as number, at_ms: row['at_ms'] as number, subject: row['subject'] as string, action: row['action'] as string,
    target: row['target'] as string, object_ids: row['object_ids'] as string[], offset: row['offset'] as number | null, outcome: row['outcome'] as string,
  };
}

const entry = z.object({
  seq: int(), at_ms: int(), subject: z.string(), action: z.string(), target: z.string(),
  object_ids: z.array(z.string()), offset: int().nullable(), outcome: z.string(),
});

export const accessLogTools: ToolDef[] = [
  readTool({
    name: 'access_log_list',
    title: 'List access log',
    capability: 'audit',
    description: 'Tenant access log (tool calls, resource reads), newest first, optionally by subject or action. Paged.',
    input: z.object({ subject: field.optional(), action: field.optional(), cursor: pageCursor, limit: pageLimit }),
    output: z.object({ entries: z.array(entry), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const scope = cursorScope(caller.tenant, 'access_log_list', { subject: a.subject ?? null, action: a.action ?? null });
      const before = a.cursor === undefined ? undefined : decodeCursorAs(scope, a.cursor, int());
      const rows = view.table('access_log').scan(before === undefined ? { reverse: true } : { range: { to: [before] }, reverse: true });
      const matching = (function* () {
        for (const r of rows) {
          if (a.subject !== undefined && r['subject'] !== a.subject) continue;
          if (a.action !== undefined && r['action'] !== a.action) continue;
          yield entryView(r);
        }
      })();
      const page = collectPage(matching, a.limit);
      return { entries: page.items, ...nextCursorField(scope, page, (e) => e.seq) };
    }),
  }),
];

export const accessLogReducers = [accessLogAppend];
export const accessLogTables = [accessLogTable];
