/**
 * The audit batch: the unit written to S3 and the link of a tenant's hash chain.
 *
 * On-object format (JSON, UTF-8), one object per batch at
 *   `tenants/{tenant}/audit/{batchSeq as 12 digits}.json`
 * holding { format, tenant, batchSeq, firstSeq, lastSeq, count, prevSha256, events[] }.
 * A batch's SHA-256 is over its exact bytes; the next batch states it as `prevSha256`, so
 * altering or dropping any batch breaks every later link. The first batch's prevSha256 is
 * 64 zeros. Sequences are the tenant's gapless staging sequence: batch k+1 starts at batch
 * k's lastSeq + 1, and count = lastSeq - firstSeq + 1 = events.length.
 */
import { createHash } from 'node:crypto';
import type { JsonValue } from '../schema.js';

export const auditBatchFormat = 'ioboxx-audit-batch/1';
export const genesisSha256 = '0'.repeat(64);
/** Every tenant's objects sit under `tenants/{tenant}/`: its audit batches and its backups. */
export const auditKeyPrefix = 'tenants/';
/** Room for a long-lived tenant: 10^12 batches. */
const batchSeqDigits = 12;
/** A batch object larger than this is refused on write and on read. */
export const auditBatchBytesMax = 64 * 1024 * 1024;
/** More than a batch's bytes other than its events take: its header (a tenant id of at most 128 ASCII characters, numbers, a hash) in JSON. */
const batchHeaderBytesMax = 1024;

export interface AuditBatchEvent {
  readonly seq: number;
  readonly source: string;
  readonly sourceSeq: number;
  readonly event: JsonValue;
}

export interface AuditBatchHeader {
  readonly tenant: string;
  readonly batchSeq: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly count: number;
  readonly prevSha256: string;
}

export interface AuditBatch extends AuditBatchHeader {
  readonly events: readonly AuditBatchEvent[];
}

export function auditBatchKey(tenant: string, batchSeq: number): string {
  return `${auditTenantPrefix(tenant)}${String(batchSeq).padStart(batchSeqDigits, '0')}.json`;
}

/**
 * Where a tenant's audit batches live. Only this is audit: the tenant's own prefix holds other
 * things too (`tenants/{tenant}/backups/`, written by `backup --upload`).
 */
export function auditTenantPrefix(tenant: string): string {
  return `${auditKeyPrefix}${tenant}/audit/`;
}

/** Tenant and batch sequence of a batch key, or undefined for any other key. */
export function parseAuditBatchKey(key: string): { tenant: string; batchSeq: number } | undefined {
  const match = /^tenants\/([^/]+)\/audit\/(\d{12})\.json$/.exec(key);
  return match ? { tenant: match[1]!, batchSeq: Number(match[2]) } : undefined;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * How many of `events`, from the first, one batch holds within auditBatchBytesMax (at least one).
 * A full batch of events is not always within it: a tenant's callers choose what its access rows
 * hold (ids of 1,024 characters, each control character escaped to 6 bytes: ~55 KB a row).
 */
export function auditBatchEventsFitting(events: readonly AuditBatchEvent[]): number {
  let bytes = batchHeaderBytesMax;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    // As encodeAuditBatch writes it, with the comma after it.
    bytes += Buffer.byteLength(JSON.stringify({ seq: e.seq, source: e.source, sourceSeq: e.sourceSeq, event: e.event })) + 1;
    if (bytes > auditBatchBytesMax) return Math.max(1, i);
  }
  return events.length;
}

/** Builds a batch's bytes from its events; checks the invariants it will be held to. */
export function encodeAuditBatch(header: Omit<AuditBatchHeader, 'firstSeq' | 'lastSeq' | 'count'>, events: readonly AuditBatchEvent[]): {
  batch: AuditBatch;
  body: Buffer;
  sha256: string;
} {
  const named = `audit batch ${header.tenant} #${header.batchSeq}`;
  if (events.length === 0) throw new Error(`${named}: no events`);
  const firstSeq = events[0]!.seq;
  events.forEach((e, i) => {
    if (e.seq !== firstSeq + i) throw new Error(`${named}: events not contiguous at ${e.seq} (expected ${firstSeq + i})`);
  });
  const batch: AuditBatch = {
    tenant: header.tenant,
    batchSeq: header.batchSeq,
    firstSeq,
    lastSeq: firstSeq + events.length - 1,
    count: events.length,
    prevSha256: header.prevSha256,
    events,
  };
  const body = Buffer.from(JSON.stringify({ format: auditBatchFormat, ...batch }), 'utf8');
  if (body.byteLength > auditBatchBytesMax) throw new Error(`${named}: ${body.byteLength} bytes > ${auditBatchBytesMax}`);
  return { batch, body, sha256: sha256Hex(body) };
}

/** Reads a batch's bytes back; returns the problems found in the batch on its own. */
export function decodeAuditBatch(body: Uint8Array): { batch?: AuditBatch; problems: string[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    return { problems: ['not JSON'] };
  }
  const b = parsed as Partial<AuditBatch> & { format?: unknown };
  if (!b || typeof b !== 'object' || b.format !== auditBatchFormat) return { problems: ['not an audit batch'] };
  const problems: string[] = [];
  const ints = ['batchSeq', 'firstSeq', 'lastSeq', 'count'] as const;
  for (const name of ints) if (!Number.isSafeInteger(b[name])) problems.push(`${name} missing`);
  if (typeof b.tenant !== 'string' || typeof b.prevSha256 !== 'string' || !Array.isArray(b.events)) problems.push('header incomplete');
  if (problems.length > 0) return { problems };
  const batch = b as AuditBatch;
  if (batch.count !== batch.events.length) problems.push(`count ${batch.count} but ${batch.events.length} events`);
  if (batch.lastSeq - batch.firstSeq + 1 !== batch.count) problems.push(`seq ${batch.firstSeq}..${batch.lastSeq} does not hold ${batch.count} events`);
  batch.events.forEach((e, i) => {
    if (e?.seq !== batch.firstSeq + i && problems.length < 10) problems.push(`event ${i} has seq ${e?.seq}, expected ${batch.firstSeq + i}`);
  });
  return { batch, problems };
}
