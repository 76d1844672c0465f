/**
 * Moves completed runs (BPMN runs, agent sessions) from a tenant's `run_outbox` table into
 * Postgres `run_history`, exactly once: the idempotent insert comes first, then the system
 * reducer `run_outbox_remove` deletes the outbox row. A crash between the two re-inserts
 * into a no-op and removes the row on the next drain. While Postgres is away the rows wait
 * in the store (its commitlog is their first durable hop).
 */
import type { Caller } from '../changes.js';
import type { StoreApi } from '../store.js';
import type { Row } from '../schema.js';
import { MemoryError } from '../errors.js';
import type { ControlPlane, RunHistoryRow } from './control-plane.js';

export const runOutboxTable = 'run_outbox';
export const runOutboxRemoveReducer = 'run_outbox_remove';
export const outboxPageRowsMax = 256;
/** One drain moves at most this many rows; the next drain continues. */
export const outboxDrainRowsMax = 10_000;

export function systemCaller(tenant: string, role: string): Caller {
  return { tenant, subject: `system:${role}`, roles: ['system'] };
}

export function runHistoryRowOf(tenant: string, row: Row): RunHistoryRow {
  const kind = row.kind;
  if (kind !== 'bpmn' && kind !== 'session') throw new MemoryError('invalid_argument', `run_outbox ${String(row.run_id)}: bad kind ${String(kind)}`);
  return {
    tenant,
    runId: String(row.run_id),
    kind,
    definition: String(row.definition),
    outcome: String(row.outcome),
    startedAtMs: Number(row.started_at_ms),
    endedAtMs: Number(row.ended_at_ms),
    details: (row.details ?? {}) as RunHistoryRow['details'],
  };
}

/** Returns how many outbox rows moved to run_history in this drain. */
export async function drainRunOutbox(control: ControlPlane, tenant: string, store: StoreApi): Promise<number> {
  const caller = systemCaller(tenant, 'run-outbox');
  let moved = 0;
  while (moved < outboxDrainRowsMax) {
    const page = await store.read((view) => view.table(runOutboxTable).page({ limit: outboxPageRowsMax }));
    if (page.rows.length === 0) break;
    for (const row of page.rows) {
      await control.insertRunHistory(runHistoryRowOf(tenant, row));
      await store.call(runOutboxRemoveReducer, { run_id: row.run_id }, caller);
      moved++;
    }
  }
  return moved;
}
