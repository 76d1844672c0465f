/**
 * Run history: completed BPMN runs and agent sessions leave the tenant's outbox for the
 * control plane's `run_history`; this read tool gives the caller's own tenant's figures
 * (counts and durations per day, definition and outcome) computed there in SQL.
 */
import { z } from 'zod';
import { isDatabaseError } from '../storage/control/database-error.js';
import { MemoryError } from '../storage/errors.js';
import { readTool } from './define-tool.js';
import type { RunHistoryAggregate, TenantMemory } from './memory.js';
import type { ToolDef } from './tool.js';

/** A summary covers at most this many days. */
export const runHistoryDaysMax = 366;
export const runHistoryRowsMax = 500;
const dayMs = 86_400_000;

/** Aggregates of [fromDay, toDay] (UTC days, inclusive), bounded in days and rows. */
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
  if (rows.length > runHistoryRowsMax) throw new MemoryError('limit_exceeded', `more than ${runHistoryRowsMax} groups: ask for fewer days`);
  return rows;
}

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
    description: 'Finished BPMN runs and agent sessions: count and durations per day, run (kind:definition) and outcome.',
    input: z.object({ days: z.int().min(1).max(runHistoryDaysMax).optional() }),
    output: z.object({ groups: z.array(group) }),
    async run(ctx, args) {
      const toDay = utcDay(Date.now());
      const fromDay = utcDay(Date.parse(`${toDay}T00:00:00Z`) - ((args.days ?? 7) - 1) * dayMs);
      const rows = await runHistorySummary(ctx.memory, fromDay, toDay);
      return {
        groups: rows.map((r) => ({
          day: r.day, run: `${r.kind}:${r.definition}`, outcome: r.outcome, n: r.count,
          avg_ms: r.durationMsAvg, p50_ms: r.durationMsP50, max_ms: r.durationMsMax,
        })),
      };
    },
  }),
];
