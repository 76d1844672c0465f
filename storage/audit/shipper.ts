/**
 * Ships staged audit events to S3 Object Lock in hash-chained batches, per tenant.
 *
 * Restart-safe at any point, by this order of steps per batch:
 *  1. the batch (its exact bytes, key and hashes) is recorded in Postgres as pending;
 *  2. the bytes are uploaded under COMPLIANCE retention with Content-MD5 and SHA-256;
 *  3. the version id is recorded and the staged rows are cleared, in one transaction.
 * A pending batch is always finished before a new one is formed, from its recorded bytes;
 * if the key already holds those bytes (the upload landed but step 3 did not), that version
 * is adopted instead of writing a second one, and a key holding other bytes is never written
 * over. So: no gap, no duplicate link, no second version.
 */
import { randomUUID, createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { MemoryError } from '../errors.js';
import type { AuditBatchRecord, ControlPlane } from '../control/control-plane.js';
import { auditBatchEventsFitting, auditBatchKey, encodeAuditBatch, genesisSha256 } from './batch.js';
import { assertObjectLockEnabled, s3AttemptsMax, type AuditBucket } from './audit-bucket.js';

export const auditBatchEventsMaxLimit = 10_000;
export const auditBatchEventsDefault = 2_000;
export const auditBatchAgeMsDefault = 5_000;
/**
 * A partial batch also closes once nothing new was staged for its tenant for this long: the
 * burst that staged it is over, so waiting out the age would only delay its audit (a burst's
 * last events reach S3 about a second after it, not five). Cost: a tenant whose events come
 * one by one, further apart than this but closer than the age, ships one object per event
 * instead of one per age: at most auditBatchAgeMsDefault / this = 5 times the objects (a
 * tenant trickling one event every 1.1 s: ~78,500 objects a day instead of ~17,300); tenants
 * with steadier or sparser traffic ship as before.
 */
export const auditBatchIdleMsDefault = 1_000;
/**
 * Longer than one upload can take (s3AttemptsMax x s3RequestTimeoutMs = 45 s), so a live shipper
 * never loses its lease mid-upload; renewed after every batch, so never mid-pass either.
 */
export const shipLeaseMs = 60_000;
const dayMs = 86_400_000;

export interface ShipOptions {
  readonly retentionDays: number;
  /** A batch closes at this many events ... */
  readonly batchEventsMax?: number;
  /** ... or when its oldest event has waited this long ... */
  readonly batchAgeMsMax?: number;
  /** ... or when its newest event was staged this long ago (nothing staged since). */
  readonly batchIdleMsMax?: number;
  /** Ship everything staged now, however few or young (the `audit ship` command). */
  readonly force?: boolean;
  readonly tenant?: string;
  /** Tenants to leave for a later pass (the loop's back-off from a tenant that failed). */
  readonly skipTenant?: (tenant: string) => boolean;
  readonly clock?: () => number;
  /** Test seam: the lease a shipper holds on a tenant, renewed after every batch (default shipLeaseMs). */
  readonly leaseMs?: number;
  /** Test seams: called after a batch's upload is confirmed by S3 / before it is recorded so. */
  readonly onUploaded?: (batch: AuditBatchRecord) => Promise<void> | void;
  readonly onConfirmed?: (batch: AuditBatchRecord) => Promise<void> | void;
}

export interface ShipResult {
  readonly batches: number;
  readonly events: number;
  /** Tenants another shipper held the lease of. */
  readonly busyTenants: readonly string[];
  /** Tenants whose shipping failed this pass; every other tenant was shipped regardless. */
  readonly failedTenants: readonly TenantShipFailure[];
  /** In how long the soonest staged, not yet shippable batch comes due by age or idleness (undefined: none waits). */
  readonly nextDueInMs?: number;
}

export interface TenantShipFailure {
  readonly tenant: string;
  readonly code: string;
  readonly message: string;
  readonly hint?: string;
}

function shipFailure(tenant: string, error: unknown): TenantShipFailure {
  const e = error instanceof Error ? error : new Error(String(error));
  const hint = (e as { hint?: unknown }).hint;
  return {
    tenant,
    code: e instanceof MemoryError ? e.code : 'internal',
    message: e.message,
    ...(typeof hint === 'string' && { hint }),
  };
}

const shipperId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

/**
 * One pass over every tenant with staged events (or the one named). A tenant that fails is
 * reported in `failedTenants` and the pass goes on: one tenant's damage never holds up another's
 * audit. What fails the whole pass (bucket not locked, Postgres away) throws.
 */
export async function shipAudit(control: ControlPlane, bucket: AuditBucket, options: ShipOptions): Promise<ShipResult> {
  const batchEventsMax = options.batchEventsMax ?? auditBatchEventsDefault;
  if (!Number.isInteger(batchEventsMax) || batchEventsMax < 1 || batchEventsMax > auditBatchEventsMaxLimit) {
    throw new MemoryError('limit_exceeded', `batchEventsMax must be 1..${auditBatchEventsMaxLimit}`);
  }
  if (!Number.isInteger(options.retentionDays) || options.retentionDays < 1) {
    throw new MemoryError('invalid_argument', 'audit retention must be at least one day');
  }
  await assertObjectLockEnabled(bucket);
  const tenants = new Set((await control.auditBacklog()).map((b) => b.tenant));
  // Tenants with a pending batch and nothing staged still need it finished.
  for (const tenant of await control.pendingAuditTenants()) tenants.add(tenant);
  // Counted as each batch is confirmed: a tenant that fails part-way still shipped what it shipped.
  const shipped = { batches: 0, events: 0 };
  let nextDueInMs: number | undefined;
  const busyTenants: string[] = [];
  const failedTenants: TenantShipFailure[] = [];
  for (const tenant of [...tenants].sort()) {
    if (options.tenant !== undefined && tenant !== options.tenant) continue;
    if (options.skipTenant?.(tenant)) continue;
    if (!(await control.claimAuditShipping(tenant, shipperId, options.leaseMs ?? shipLeaseMs))) {
      busyTenants.push(tenant);
      continue;
    }
    try {
      const dueInMs = await shipTenant(control, bucket, tenant, { ...options, batchEventsMax }, shipped);
      if (dueInMs !== undefined) nextDueInMs = Math.min(nextDueInMs ?? dueInMs, dueInMs);
    } catch (error) {
      failedTenants.push(shipFailure(tenant, error));
    } finally {
      await control.releaseAuditShipping(tenant, shipperId).catch(() => undefined);
    }
  }
  return { ...shipped, busyTenants, failedTenants, ...(nextDueInMs !== undefined && { nextDueInMs }) };
}

/** Ships one tenant's due batches, counting each into `shipped`; returns in how long its waiting partial batch comes due (undefined: none waits). */
async function shipTenant(
  control: ControlPlane,
  bucket: AuditBucket,
  tenant: string,
  options: ShipOptions & { batchEventsMax: number },
  shipped: { batches: number; events: number },
): Promise<number | undefined> {
  const clock = options.clock ?? Date.now;
  const ageMsMax = options.batchAgeMsMax ?? auditBatchAgeMsDefault;
  const idleMsMax = options.batchIdleMsMax ?? auditBatchIdleMsDefault;
  for (;;) {
    let batch = await control.pendingAuditBatch(tenant);
    if (!batch) {
      const last = await control.lastConfirmedAuditBatch(tenant);
      const afterSeq = last?.lastSeq ?? 0;
      const staged = await control.stagedAudit(tenant, { afterSeq, limit: options.batchEventsMax });
      if (staged.length === 0) break;
      const events = staged.map((s) => ({ seq: s.seq, source: s.source, sourceSeq: s.sourceSeq, event: s.event }));
      // Bounded by bytes too: the events past what fits go in the next batch.
      const fitting = auditBatchEventsFitting(events);
      const full = staged.length >= options.batchEventsMax || fitting < staged.length;
      const nowMs = clock();
      const ageMs = nowMs - staged[0]!.stagedAtMs;
      // Not full, the events are read up to the newest staged: it tells whether staging went idle.
      const idleMs = nowMs - staged[staged.length - 1]!.stagedAtMs;
      if (!full && ageMs < ageMsMax && idleMs < idleMsMax && !options.force) {
        return Math.min(ageMsMax - ageMs, idleMsMax - idleMs);
      }
      const hole = staged.findIndex((s, i) => s.seq !== afterSeq + 1 + i);
      if (hole >= 0) {
        throw new MemoryError(
          'internal',
          `audit staging of tenant ${tenant} has a hole: seq ${afterSeq + 1 + hole} is missing (the next staged is ${staged[hole]!.seq})`,
          'a staged audit event was removed outside the server; `ioboxx-memory audit verify` names the gap. This tenant\'s audit does not ship past it (other tenants ship on) until the events are restored in Postgres, or recorded as lost: `ioboxx-memory audit close-gap --tenant ' + tenant + '`',
        );
      }
      const batchSeq = (last?.batchSeq ?? 0) + 1;
      const encoded = encodeAuditBatch(
        { tenant, batchSeq, prevSha256: last?.sha256 ?? genesisSha256 },
        events.slice(0, fitting),
      );
      batch = {
        tenant,
        batchSeq,
        firstSeq: encoded.batch.firstSeq,
        lastSeq: encoded.batch.lastSeq,
        count: encoded.batch.count,
        sha256: encoded.sha256,
        prevSha256: encoded.batch.prevSha256,
        key: auditBatchKey(tenant, batchSeq),
        versionId: null,
        body: encoded.body,
      };
      await control.recordPendingAuditBatch(batch as AuditBatchRecord & { body: Buffer });
    }
    const versionId = await uploadBatch(bucket, batch, options.retentionDays, clock);
    await options.onUploaded?.(batch);
    await control.confirmAuditBatch(tenant, batch.batchSeq, versionId);
    await options.onConfirmed?.({ ...batch, versionId, body: null });
    shipped.batches++;
    shipped.events += batch.count;
    // Renewed per batch: a long backlog outlives one lease (600k events took 86 s), and a shipper
    // that took over an expired lease would form the same next batch as this one.
    if (!(await control.claimAuditShipping(tenant, shipperId, options.leaseMs ?? shipLeaseMs))) {
      throw new MemoryError(
        'conflict',
        `lost the audit shipping lease of tenant ${tenant} after batch ${batch.batchSeq}: another shipper holds it now`,
        'nothing is lost: the shipper holding the lease goes on from the last confirmed batch',
      );
    }
  }
  return undefined;
}

/**
 * Uploads a pending batch, or adopts the version already holding its exact bytes. The key is
 * looked at before every try, the first too: a batch left pending may have landed, a failed try
 * may have been stored with its answer lost, and another control plane (a second server with its
 * own database on this bucket, or this database restored from an older backup) may have shipped
 * this batch number already. A second PUT would leave a second version, kept for good.
 */
async function uploadBatch(bucket: AuditBucket, batch: AuditBatchRecord, retentionDays: number, clock: () => number): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const existing = await headVersion(bucket, batch.key);
    if (existing) {
      if (existing.sha256 === batch.sha256) return existing.versionId;
      throw new MemoryError(
        'conflict',
        `audit key ${batch.key} already holds other bytes (sha256 ${existing.sha256 ?? 'unknown'}, expected ${batch.sha256})`,
        'another writer shipped this batch number: a second server with its own database on this bucket, or this database restored from an older backup. This tenant\'s audit stays staged; run `ioboxx-memory audit verify` and investigate',
      );
    }
    try {
      return await putBatch(bucket, batch, retentionDays, clock);
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      // A refusal (403, 400, ...) is an answer: the same request would be refused again.
      const refused = status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
      if (refused || attempt >= s3AttemptsMax || error instanceof MemoryError) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
  }
}

async function putBatch(bucket: AuditBucket, batch: AuditBatchRecord, retentionDays: number, clock: () => number): Promise<string> {
  const body = batch.body;
  if (!body) throw new MemoryError('internal', `pending audit batch ${batch.key} has no body`);
  const result = await (bucket.uploadClient ?? bucket.client).send(
    new PutObjectCommand({
      Bucket: bucket.bucket,
      Key: batch.key,
      Body: body,
      ContentType: 'application/json',
      ContentMD5: createHash('md5').update(body).digest('base64'),
      ChecksumSHA256: Buffer.from(batch.sha256, 'hex').toString('base64'),
      ObjectLockMode: 'COMPLIANCE',
      ObjectLockRetainUntilDate: new Date(clock() + retentionDays * dayMs),
      Metadata: {
        sha256: batch.sha256,
        'prev-sha256': batch.prevSha256,
        'batch-seq': String(batch.batchSeq),
        'first-seq': String(batch.firstSeq),
        'last-seq': String(batch.lastSeq),
        count: String(batch.count),
      },
    }),
  );
  if (!result.VersionId) {
    throw new MemoryError('internal', `S3 returned no version id for ${batch.key}: is the bucket versioned with Object Lock?`);
  }
  return result.VersionId;
}

async function headVersion(bucket: AuditBucket, key: string): Promise<{ versionId: string; sha256: string | undefined } | undefined> {
  try {
    const head = await bucket.client.send(new HeadObjectCommand({ Bucket: bucket.bucket, Key: key }));
    if (!head.VersionId) throw new MemoryError('internal', `S3 returned no version id for ${key}`);
    return { versionId: head.VersionId, sha256: head.Metadata?.sha256 };
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404) return undefined;
    throw error;
  }
}

export interface AuditShipperLoop {
  /** Ship now (e.g. a full batch was staged) rather than at the next tick; a pass under way runs once more. */
  nudge(): void;
  /** When this loop last had a batch confirmed shipped (undefined: none since it started). */
  lastShippedAtMs(): number | undefined;
  stop(): Promise<void>;
}

/** A nudge or a due batch never makes passes closer than this (each pass queries the backlog). */
export const shipPassGapMsMin = 50;
/** A tenant that failed is retried after the interval, doubled per failure in a row up to this. */
export const tenantRetryMsMax = 5 * 60_000;

/**
 * Ships every `intervalMs` until stopped — sooner when a waiting batch comes due by age or the
 * loop is nudged; a failed pass is reported and retried on the next. A tenant that fails alone
 * is reported and backed off on its own while the others ship on every pass.
 */
export function startAuditShipper(
  control: ControlPlane,
  bucket: AuditBucket,
  options: ShipOptions & {
    intervalMs: number;
    onError?: (error: unknown) => void;
    onTenantError?: (failure: TenantShipFailure, retryInMs: number) => void;
    onPass?: (result: ShipResult) => void;
  },
): AuditShipperLoop {
  const clock = options.clock ?? Date.now;
  /** Tenants that failed, with how many times in a row and when they are tried again. */
  const backoff = new Map<string, { failures: number; retryAtMs: number }>();
  const backingOff = (tenant: string) => (backoff.get(tenant)?.retryAtMs ?? 0) > clock();
  let lastShippedAtMs: number | undefined;
  const onConfirmed = async (batch: AuditBatchRecord) => {
    lastShippedAtMs = clock();
    await options.onConfirmed?.(batch);
  };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let passing = false;
  let nudged = false;
  /** After a failed pass, nudges wait for the next tick: S3 or Postgres away must not be hammered. */
  let failed = false;
  let running: Promise<void> = Promise.resolve();
  const schedule = (waitMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = undefined;
      running = pass();
    }, Math.max(shipPassGapMsMin, waitMs));
  };
  const pass = async () => {
    passing = true;
    nudged = false;
    let waitMs = options.intervalMs;
    failed = false;
    try {
      // Ship first, then report: `onPass?.(await ...)` would skip the shipping when onPass is unset.
      const result = await shipAudit(control, bucket, { ...options, skipTenant: backingOff, onConfirmed });
      for (const failure of result.failedTenants) {
        const failures = (backoff.get(failure.tenant)?.failures ?? 0) + 1;
        const retryInMs = Math.min(options.intervalMs * 2 ** (failures - 1), tenantRetryMsMax);
        backoff.set(failure.tenant, { failures, retryAtMs: clock() + retryInMs });
        options.onTenantError?.(failure, retryInMs);
      }
      // A tenant tried this pass and not failed (or gone from the backlog) has recovered.
      for (const tenant of backoff.keys()) if (!backingOff(tenant)) backoff.delete(tenant);
      options.onPass?.(result);
      // Due by age before the next tick: come back then (the age bound is the audit's latency promise).
      if (result.nextDueInMs !== undefined) waitMs = Math.min(waitMs, result.nextDueInMs);
    } catch (error) {
      failed = true;
      options.onError?.(error);
    }
    passing = false;
    schedule(nudged && !failed ? 0 : waitMs);
  };
  running = pass();
  return {
    nudge() {
      if (stopped || failed) return;
      if (passing) {
        nudged = true;
        return;
      }
      if (timer) clearTimeout(timer);
      schedule(0);
    },
    lastShippedAtMs: () => lastShippedAtMs,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
