/**
 * Every audit event lands in Postgres staging exactly once before the shipper takes it to S3:
 * the tenant's `access_log` rows (their `seq` is the source sequence; only rows past the
 * staged mark are read and the insert is idempotent) and server-level events such as denials
 * before a tenant is known (tenant `_server`). A store whose access log started its history
 * again is staged under the next generation of the source (source-generation.ts).
 */
import { createHash } from 'node:crypto';
import type { JsonValue, Row } from '../schema.js';
import type { TableReader } from '../reducer.js';
import type { StoreApi } from '../store.js';
import { stageEventsMax, type AuditEventInput, type AuditMarker, type ControlPlane } from './control-plane.js';
import { auditRestartSource, generationSource, historyRestart, sourceGeneration, type AuditSourceMark, type HeldAtMark, type HistoryRestartCause } from './source-generation.js';

export const accessLogTable = 'access_log';
export const accessLogSource = 'access_log';
export const serverAuditSource = 'server';
export const serverAuditTenant = '_server';
/** Source of the marker staged when access-log rows aged out before they were staged. */
export const auditGapSource = 'audit_gap';
export const stagePageRowsMax = Math.min(1_000, stageEventsMax);

export interface ServerAuditEvent {
  /** The tenant when it is known, else null (staged under `_server`). */
  readonly tenant: string | null;
  readonly atMs: number;
  readonly subject: string | null;
  readonly action: string;
  readonly target: string;
  readonly outcome: string;
  readonly reason?: string;
}

/** The staged (and shipped) form of an access-log row: what `audit verify` compares the store's rows with. */
export function accessLogEvent(row: Row): JsonValue {
  return {
    seq: row.seq as number,
    at_ms: row.at_ms as number,
    subject: row.subject as string,
    action: row.action as string,
    target: row.target as string,
    object_ids: (row.object_ids ?? null) as JsonValue,
    offset: (row.offset ?? null) as number | null,
    outcome: row.outcome as string,
  };
}

/**
 * What a mark keeps of the access-log row staged at it, to know that row again in the store.
 * Over a fixed list of fields, not the staged form: marks in Postgres hold its output, and any
 * change here would read as a restarted history in every store.
 */
export function accessLogRowDigest(row: Row): string {
  const fields = [row.seq, row.at_ms, row.subject, row.action, row.target, row.object_ids ?? null, row.offset ?? null, row.outcome];
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

/**
 * Stages the tenant's access-log rows past the staged mark; returns how many were new. Rows
 * the log evicted before they were staged are named by an `audit_gap` event in their place,
 * staged with the rows after them. A store whose history restarted (see historyRestart) is
 * staged from its oldest row under the source's next generation, opened with an `audit_restart`
 * event saying where the last one ended.
 */
export async function stageAccessLog(control: ControlPlane, tenant: string, store: StoreApi): Promise<number> {
  let mark = await control.auditSourceMark(tenant, accessLogSource);
  const held = await store.read((view) => heldAtMark(view.table(accessLogTable), mark.stagedThrough));
  const cause = historyRestart(mark, held);
  if (cause) {
    const fromSeq = held.oldestSeq!;
    const opened = await control.openAuditGeneration(tenant, mark, fromSeq, restartMarker(mark, cause, held, fromSeq));
    // The mark moved while this judged it: another stager took this tenant's rows meanwhile (and
    // any restart with them); the next drain judges again.
    if (opened.generation === mark.generation) return 0;
    mark = opened;
  }
  let staged = 0;
  let through = mark.stagedThrough;
  for (;;) {
    const from = through + 1;
    const page = await store.read((view) =>
      view.table(accessLogTable).page({ range: { from: [from] }, limit: stagePageRowsMax }),
    );
    if (page.rows.length === 0) return staged;
    const firstSeq = page.rows[0]!.seq as number;
    // The log evicted rows before they were staged: say so in the chain, never hide it (in the
    // rows' transaction, so a crash between the two cannot stage the gap twice).
    const gap: AuditMarker | undefined = firstSeq > from
      ? { source: auditGapSource, event: { source: mark.source, lost_from_seq: from, lost_to_seq: firstSeq - 1 } }
      : undefined;
    staged += await control.stageAudit(
      tenant,
      page.rows.map((row) => ({ source: mark.source, sourceSeq: row.seq as number, event: accessLogEvent(row), digest: accessLogRowDigest(row) })),
      gap,
    );
    through = page.rows[page.rows.length - 1]!.seq as number;
    if (page.rows.length < stagePageRowsMax) return staged;
  }
}

/** The oldest and newest seq an access log holds (null: no row). */
export function accessLogEnds(table: TableReader): { oldestSeq: number | null; newestSeq: number | null } {
  const seqOf = (rows: Iterable<Row>) => {
    for (const row of rows) return row.seq as number;
    return null;
  };
  return { oldestSeq: seqOf(table.scan({ limit: 1 })), newestSeq: seqOf(table.scan({ reverse: true, limit: 1 })) };
}

function heldAtMark(table: TableReader, markSeq: number): HeldAtMark & { oldestSeq: number | null } {
  const atMark = markSeq > 0 ? table.get([markSeq]) : undefined;
  return { ...accessLogEnds(table), digestAtMark: atMark && accessLogRowDigest(atMark) };
}

/** The `audit_restart` event: which generation ended where, why, and where the next one starts. */
function restartMarker(ended: AuditSourceMark, cause: HistoryRestartCause, held: HeldAtMark, fromSeq: number): AuditMarker {
  const { family, generation } = sourceGeneration(ended.source);
  return {
    source: auditRestartSource,
    event: {
      source: ended.source,
      staged_through_seq: ended.stagedThrough,
      cause,
      next_source: generationSource(family, generation + 1),
      next_from_seq: fromSeq,
      store_newest_seq: held.newestSeq,
    },
  };
}

function serverAuditBody(event: ServerAuditEvent): JsonValue {
  return {
    at_ms: event.atMs,
    subject: event.subject,
    action: event.action,
    target: event.target,
    outcome: event.outcome,
    ...(event.reason === undefined ? {} : { reason: event.reason }),
  };
}

/** Stages one server-level event; returns its source sequence. */
export async function stageServerAudit(control: ControlPlane, event: ServerAuditEvent): Promise<number> {
  return control.stageAuditNext(event.tenant ?? serverAuditTenant, serverAuditSource, serverAuditBody(event));
}

/**
 * The source of server-level events kept in the spool `spoolId` across a restart: a source of
 * their own, numbered by their place in the spool, so staging them again (a crash before the
 * spool was removed) is a no-op like a restaged access-log row.
 */
export function serverAuditSpoolSource(spoolId: string): string {
  return `${serverAuditSource}:spool:${spoolId}`;
}

/** Stages the events of spool `spoolId` once (idempotent); returns how many were new. */
export async function stageServerAuditSpool(control: ControlPlane, spoolId: string, events: readonly ServerAuditEvent[]): Promise<number> {
  const source = serverAuditSpoolSource(spoolId);
  const byTenant = new Map<string, AuditEventInput[]>();
  for (const event of events) {
    const tenant = event.tenant ?? serverAuditTenant;
    let list = byTenant.get(tenant);
    if (!list) byTenant.set(tenant, (list = []));
    list.push({ source, sourceSeq: list.length + 1, event: serverAuditBody(event) });
  }
  let staged = 0;
  for (const [tenant, list] of byTenant) {
    for (let from = 0; from < list.length; from += stageEventsMax) {
      staged += await control.stageAudit(tenant, list.slice(from, from + stageEventsMax));
    }
  }
  return staged;
}
