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

const appendArgs = z.object({
  subject: field.min(1),
  action: field.min(1), // e.g. tools/call, resources/read
  target: field, // the tool name or the URI
  object_ids: z.array(field).max(accessLogObjectIdsMax).optional(),
  offset: int(0).nullable().optional(),
  outcome: field.min(1), // ok, or an error code such as forbidden
});

/** System reducer (no tool): the server appends one row per tool call and resource read. */
export const accessLogAppend = accessLogAppendKeeping(accessLogRowsMax);

/** The append reducer keeping the newest `rowsMax` rows (tests use a small bound to watch eviction). */
export function accessLogAppendKeeping(rowsMax: number) {
  return defineReducer({
    name: 'access_log_append',
    args: appendArgs,
    run(ctx, a): { seq: number } {
      const log = ctx.table('access_log');
      let seq = 1;
      for (const last of log.scan({ reverse: true, limit: 1 })) seq = (last['seq'] as number) + 1;
      log.insert({
        seq, at_ms: ctx.timestampMs, subject: a.subject, action: a.action, target: a.target,
        object_ids: a.object_ids ?? [], offset: a.offset ?? null, outcome: a.outcome,
      });
      // At most one row over the bound after an insert: evict the oldest, deterministically.
      if (log.size > rowsMax) {
        for (const oldest of log.scan({ limit: 1 })) log.delete([oldest['seq'] as number]);
      }
      return { seq };
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
