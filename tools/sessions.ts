/**
 * Agent sessions: a start and an end; ending one writes its run-history row to the outbox
 * in the same transaction (kind 'session', definition = the agent's name).
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { defineReducer, type TableReader } from '../storage/reducer.js';
import type { JsonValue, TableSchema } from '../storage/schema.js';
import { cursorScope } from './cursor.js';
import { readTool, writeTool } from './define-tool.js';
import { patterned, rowId } from './identifiers.js';
import { boundJsonBytes } from './json-bytes.js';
import { newestFirstPage } from './newest-first.js';
import { pageCursor, pageLimit } from './result-page.js';
import { recordFinishedRun } from './run-outbox.js';
import type { ToolDef } from './tool.js';
import { int, jsonObject } from './wire-schema.js';

export const agentNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$/;
export const sessionTitleCharsMax = 256;
/** UTF-8 bytes of JSON of a session's details (merged at the end). */
export const sessionDetailsBytesMax = 16 * 1024;
export const sessionOutcomes = ['completed', 'failed', 'cancelled'] as const;

export const agentSessionsTable: TableSchema = {
  name: 'agent_sessions',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'agent', type: 'string' },
    { name: 'title', type: 'string' },
    { name: 'state', type: 'string' }, // sessionStates
    { name: 'started_at_ms', type: 'int' },
    { name: 'started_by', type: 'string' },
    { name: 'ended_at_ms', type: 'int', nullable: true },
    { name: 'outcome', type: 'string', nullable: true },
    { name: 'details', type: 'json' },
  ],
  primaryKey: ['id'],
  // sessions_list: the most recently started first, of every state or of one (ids are random).
  indexes: [
    { name: 'agent_sessions_by_started', columns: ['started_at_ms'] },
    { name: 'agent_sessions_by_state', columns: ['state', 'started_at_ms'] },
  ],
};
export const sessionStates = ['active', 'ended'] as const;
type SessionState = typeof sessionStates[number];

const details = jsonObject;

function boundDetails(value: unknown): void {
  boundJsonBytes('details', value, 'sessionDetailsBytesMax', sessionDetailsBytesMax);
}

const startArgs = z.object({ agent: patterned(agentNamePattern, 'agent'), title: z.string().max(sessionTitleCharsMax).optional(), details: details.optional() });
const startResult = z.object({ session: z.string() });

export const sessionStart = defineReducer({
  name: 'session_start',
  args: startArgs,
  run(ctx, a): z.infer<typeof startResult> {
    boundDetails(a.details ?? {});
    const sessions = ctx.table('agent_sessions');
    let id = ctx.newId('ses');
    while (sessions.get([id]) || ctx.table('run_outbox').get([id])) id = ctx.newId('ses');
    sessions.insert({
      id, agent: a.agent, title: a.title ?? '', state: 'active' satisfies SessionState, started_at_ms: ctx.timestampMs, started_by: ctx.caller.subject,
      ended_at_ms: null, outcome: null, details: a.details ?? {},
    });
    return { session: id };
  },
});

const endArgs = z.object({ session: rowId, outcome: z.enum(sessionOutcomes), details: details.optional() });
const endResult = z.object({ duration_ms: int() });

export const sessionEnd = defineReducer({
  name: 'session_end',
  args: endArgs,
  run(ctx, a): z.infer<typeof endResult> {
    const sessions = ctx.table('agent_sessions');
    const session = sessions.get([a.session]);
    if (!session) throw new MemoryError('not_found', `session ${a.session} does not exist`);
    if (session['state'] !== ('active' satisfies SessionState)) throw new MemoryError('invalid_argument', `session ${a.session} already ended (${String(session['outcome'])})`);
    const merged = { ...(session['details'] as Record<string, unknown>), ...(a.details ?? {}) };
    boundDetails(merged);
    sessions.update({ ...session, state: 'ended' satisfies SessionState, ended_at_ms: ctx.timestampMs, outcome: a.outcome, details: merged });
    const startedAtMs = session['started_at_ms'] as number;
    recordFinishedRun(ctx, {
      run_id: a.session, kind: 'session', definition: session['agent'] as string, outcome: a.outcome,
      started_at_ms: startedAtMs, ended_at_ms: ctx.timestampMs, details: merged as JsonValue,
    });
    return { duration_ms: ctx.timestampMs - startedAtMs };
  },
});

export function sessionView(view: { table(name: string): TableReader }, id: string): SessionView | undefined {
  const row = view.table('agent_sessions').get([id]);
  if (!row) return undefined;
  return {
    session: id,
    agent: row['agent'] as string,
    title: row['title'] as string,
    state: row['state'] as string,
    started_at_ms: row['started_at_ms'] as number,
    ended_at_ms: row['ended_at_ms'] as number | null,
    outcome: row['outcome'] as string | null,
    details: row['details'] as Record<string, unknown>,
  };
}

const sessionOutput = z.object({
  session: z.string(), agent: z.string(), title: z.string(), state: z.string(), started_at_ms: int(),
  ended_at_ms: int().nullable(), outcome: z.string().nullable(), details,
});
export type SessionView = z.infer<typeof sessionOutput>;

export const sessionTools: ToolDef[] = [
  writeTool({
    reducer: sessionStart, args: startArgs, result: startResult, title: 'Start agent session',
    description: 'Record the start of an agent session; returns its id.',
  }),
  writeTool({
    reducer: sessionEnd, args: endArgs, result: endResult, title: 'End agent session',
    description: 'End an active session with an outcome; records its run history.',
  }),
  readTool({
    name: 'session_get', title: 'Get agent session', description: 'Read an agent session.',
    input: z.object({ session: rowId }), output: sessionOutput,
    run: ({ memory }, a) => memory.store.read((view) => {
      const found = sessionView(view, a.session);
      if (!found) throw new MemoryError('not_found', `session ${a.session} does not exist`);
      return found;
    }),
  }),
  readTool({
    name: 'sessions_list', title: 'List agent sessions', description: 'Agent sessions, most recently started first (state: only those in it). Paged.',
    input: z.object({ state: z.enum(sessionStates).optional(), cursor: pageCursor, limit: pageLimit }),
    output: z.object({ sessions: z.array(z.object({ session: z.string(), agent: z.string(), title: z.string(), state: z.string(), started_at_ms: int() })), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const query = {
        ...(a.state === undefined ? { index: 'agent_sessions_by_started', equal: [] } : { index: 'agent_sessions_by_state', equal: [a.state] }),
        scope: cursorScope(caller.tenant, 'sessions_list', a.state ?? null), cursor: a.cursor, limit: a.limit,
      };
      const { items, ...next } = newestFirstPage(view.table('agent_sessions'), query,
        (r) => ({ session: r['id'] as string, agent: r['agent'] as string, title: r['title'] as string, state: r['state'] as string, started_at_ms: r['started_at_ms'] as number }),
        (s) => [s.started_at_ms, s.session]);
      return { sessions: items, ...next };
    }),
  }),
];

export const sessionReducers = [sessionStart, sessionEnd];
export const sessionTables = [agentSessionsTable];
