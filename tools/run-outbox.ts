/**
 * The run-history outbox: a finished BPMN run or agent session leaves one row here, in the
 * same transaction that finished it. The control plane's drain copies each row to Postgres
 * (idempotently, keyed by tenant and run id) and then calls `run_outbox_remove`.
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { defineReducer, type ReducerContext } from '../storage/reducer.js';
import type { JsonValue, TableSchema } from '../storage/schema.js';
import { rowId } from './identifiers.js';

/** Undrained rows past this refuse new finishes: run history must not be lost, so writers wait for the drain. */
export const runOutboxRowsMax = 100_000;

/** Schema fixed by the control-plane drain. */
export const runOutboxTable: TableSchema = {
  name: 'run_outbox',
  columns: [
    { name: 'run_id', type: 'string' },
    { name: 'kind', type: 'string' },
    { name: 'definition', type: 'string' },
    { name: 'outcome', type: 'string' },
    { name: 'started_at_ms', type: 'int' },
    { name: 'ended_at_ms', type: 'int' },
    { name: 'details', type: 'json' },
  ],
  primaryKey: ['run_id'],
  rowsMax: runOutboxRowsMax,
};

export interface FinishedRun {
  readonly run_id: string;
  readonly kind: 'bpmn' | 'session';
  readonly definition: string;
  readonly outcome: string;
  readonly started_at_ms: number;
  readonly ended_at_ms: number;
  readonly details: JsonValue;
}

export function recordFinishedRun(ctx: ReducerContext, run: FinishedRun): void {
  const outbox = ctx.table('run_outbox');
  if (outbox.size >= runOutboxRowsMax) {
    throw new MemoryError('limit_exceeded', `${run.kind} ${run.run_id} cannot finish now: the run outbox holds ${outbox.size} runs not yet copied to the control plane's run history; the limit (runOutboxRowsMax) is ${runOutboxRowsMax}. Nothing changed`,
      'retry later: the server copies finished runs out in the background. If it lasts, its control plane is not draining them (not connected, or its embedded database held by another process): the server\'s log says why (tell an operator)');
  }
  outbox.insert({ ...run });
}

/** System reducer (no tool): the drain removes a row once Postgres holds it. Removing an absent row is a no-op. */
export const runOutboxRemove = defineReducer({
  name: 'run_outbox_remove',
  args: z.object({ run_id: rowId }),
  run(ctx, a): { run_id: string; removed: boolean } {
    return { run_id: a.run_id, removed: ctx.table('run_outbox').delete([a.run_id]) !== undefined };
  },
});
