/**
 * Run history: completed BPMN runs and agent sessions leave the tenant's outbox for the
 * control plane's `run_history`; this read tool gives the caller's own tenant's figures
 * (counts and durations per day, definition and outcome) computed there in SQL.
 */
import { z } from 'zod';
import { isDatabaseError } from '../storage/control/database-error.js';
import { MemoryError } from '../storage/errors.js';
import { cursorScope, decodeCursorAs, nextCursorField } from './cursor.js';
import { readTool } from './define-tool.js';
import type { RunHistoryAggregate, TenantMemory } from './memory.js';
import { collectPage, pageCursor } from './result-page.js';
import type { ToolDef } from './tool.js';

/** A summary covers at most this many days. */
export const runHistoryDaysMax = 366;
/** Groups per page of a summary (and at most pageItemsBytesMax of them). */
export const runHistoryGroupsPerPageMax = 500;
/**
 * Groups of one summary's window: the control plane answers at most this many (its pageRowsMax),
 * so a window that has them may have more, which no page could reach.
 */
export const runHistoryGroupsMax = 10_000;
const dayMs = 86_400_000;

/** Aggregates of [fromDay, toDay] (UTC days, inclusive), bounded in days and groups. */
export async function runHistorySummary(memory: TenantMemory, fromDay: string, toDay: string): Promise<RunHistoryAggregate[]> {
  if (!memory.runHistory) throw new MemoryError('unavailable', 'run history is kept in the control plane, which is not connected', 'retry shortly');
  const fromMs = Date.parse(`${fromDay}T00:00:00Z`);
  const toMs = Date.parse(`${toDay}T00:00:00Z`) + dayMs;
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs) || toMs <= fromMs) throw new MemoryError('invalid_argument', 'from_day must be a day on or before to_day');
  if ((toMs - fromMs) / dayMs > runHistoryDaysMax) throw new MemoryError('limit_exceeded', `a summary covers at most ${runHistoryDaysMax} days`);
  const rows = await memory.runHistory.aggregates(fromMs, toMs).catch((error: unknown) => {
    if (isDatabaseError(error)) throw new MemoryError('unavailable', 'run history is kept in the control plane, which does not answer now', 'retry shortly');
    throw error;
  });
  if (rows.length >= runHistoryGroupsMax) {
    throw new MemoryError('limit_exceeded', `${fromDay}..${toDay} holds ${runHistoryGroupsMax} or more groups (runHistoryGroupsMax)`, 'ask for fewer days');
  }
  return rows;
}

/** A group's place in a summary: its day, then kind, definition and outcome, as code units (the database's collation may order text otherwise). */
function groupKey(r: RunHistoryAggregate): [string, string, string, string] {
  return [r.day, r.kind, r.definition, r.outcome];
}

function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

/** Where a summary's page ended: the window it pages (the days move at midnight UTC) and its last group. */
const summaryPosition = z.object({ from: z.string(), to: z.string(), after: z.tuple([z.string(), z.string(), z.string(), z.string()]) });

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

const group = z.object({
  day: z.string(), run: z.string(), outcome: z.string(), n: z.number(), avg_ms: z.number(), p50_ms: z.number(), max_ms: z.number(),
});

export const runHistoryTools: ToolDef[] = [
  readTool({
    name: 'run_history_summary',
    title: 'Run history summary',
    description: 'Finished BPMN runs and agent sessions: count and durations per day, run (kind:definition) and outcome. Paged.',
    input: z.object({ days: z.int().min(1).max(runHistoryDaysMax).optional(), cursor: pageCursor }),
    output: z.object({ groups: z.array(group), next_cursor: z.string().optional() }),
    async run(ctx, args) {
      const scope = cursorScope(ctx.caller.tenant, 'run_history_summary', args.days ?? null);
      const position = args.cursor === undefined ? undefined : decodeCursorAs(scope, args.cursor, summaryPosition);
      const toDay = position?.to ?? utcDay(Date.now());
      const fromDay = position?.from ?? utcDay(Date.parse(`${toDay}T00:00:00Z`) - ((args.days ?? 7) - 1) * dayMs);
      const rows = (await runHistorySummary(ctx.memory, fromDay, toDay)).sort((a, b) => compareKeys(groupKey(a), groupKey(b)));
      const after = position?.after;
      const page = collectPage(after === undefined ? rows : rows.filter((r) => compareKeys(groupKey(r), after) > 0), runHistoryGroupsPerPageMax);
      return {
        groups: page.items.map((r) => ({
          day: r.day, run: `${r.kind}:${r.definition}`, outcome: r.outcome, n: r.count,
          avg_ms: r.durationMsAvg, p50_ms: r.durationMsP50, max_ms: r.durationMsMax,
        })),
        ...nextCursorField(scope, page, (last) => ({ from: fromDay, to: toDay, after: groupKey(last) })),
      };
    },
  }),
];
