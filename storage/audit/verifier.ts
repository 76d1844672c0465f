/**
 * `audit verify`: walks every object version under each tenant's audit prefix
 * (`tenants/{tenant}/audit/`, not the backups beside it) and proves, per tenant,
 * that the chain is whole: batches 1..n each present once, each under COMPLIANCE retention,
 * each's bytes hashing to what the next batch (and the control plane, when reachable)
 * recorded, sequences contiguous across batches and counts equal to their events; with the
 * control plane, a batch it has no record of shipping is unexpected, however well it links,
 * and the staged events not yet shipped must run gap-free up to the tenant's next seq. Every
 * problem is named (tenant, key, version); none is fatal to the walk.
 */
import {
  GetObjectCommand,
  GetObjectRetentionCommand,
  ListObjectVersionsCommand,
  type ObjectVersion,
  type DeleteMarkerEntry,
} from '@aws-sdk/client-s3';
import type { AuditBatchRecord, AuditStagingSpan, ControlPlane } from '../control/control-plane.js';
import { auditBatchBytesMax, auditKeyPrefix, auditTenantPrefix, decodeAuditBatch, genesisSha256, parseAuditBatchKey, sha256Hex } from './batch.js';
import type { AuditBucket } from './audit-bucket.js';

/** A bucket listing longer than this is refused rather than held in memory. */
export const verifyVersionsMax = 5_000_000;
const fetchConcurrency = 8;

export type AuditProblemKind =
  | 'missing_batch' // a batch number absent from the bucket (or recorded in Postgres but absent)
  | 'gap' // sequences between two batches not contiguous, or a hole in what is staged to ship
  | 'chain_break' // prevSha256 not the previous batch's hash
  | 'altered' // bytes not hashing to the recorded / stated SHA-256
  | 'extra_version' // a key holding more than its one shipped version
  | 'delete_marker' // a delete marker hiding a batch
  | 'bad_batch' // a batch inconsistent in itself (count, sequences, format)
  | 'not_locked' // a batch version without COMPLIANCE retention
  | 'unexpected_object'; // an object under the audit prefix that is no batch, or a batch the control plane never shipped

export interface AuditProblem {
  readonly kind: AuditProblemKind;
  readonly tenant: string;
  readonly key?: string;
  readonly versionId?: string;
  readonly batchSeq?: number;
  readonly detail: string;
}

export interface AuditTenantSummary {
  readonly tenant: string;
  readonly batches: number;
  readonly events: number;
  readonly lastSeq: number;
  readonly headSha256: string;
}

export interface AuditReport {
  readonly ok: boolean;
  readonly tenants: readonly AuditTenantSummary[];
  readonly problems: readonly AuditProblem[];
}

/** One batch as fetched: the version chosen as the shipped one. */
export interface FetchedBatch {
  readonly key: string;
  readonly batchSeq: number;
  readonly versionId: string;
  readonly body: Buffer;
  readonly metadataSha256?: string;
  readonly lockMode?: string;
}

/**
 * The chain proof of one tenant, fed batch by batch in batchSeq order so a long chain is
 * proven in bounded memory (only the running link is kept, never the bodies).
 */
export class AuditChainProof {
  readonly problems: AuditProblem[] = [];
  /** Batches the control plane confirmed shipped; undefined: no control plane to cross-check. */
  private readonly recordedBySeq: Map<number, AuditBatchRecord> | undefined;
  /** Batches recorded but not yet confirmed: their upload may have landed. */
  private readonly pendingBySeq: Map<number, AuditBatchRecord>;
  private readonly seen = new Set<number>();
  private expectedBatchSeq = 1;
  private prevSha = genesisSha256;
  private prevLastSeq = 0;
  private events = 0;
  private batches = 0;

  constructor(
    readonly tenant: string,
    /** The control plane's records of this tenant's batches, when it is cross-checked. */
    recorded?: readonly AuditBatchRecord[],
  ) {
    this.recordedBySeq = recorded && new Map(recorded.filter((r) => r.versionId !== null).map((r) => [r.batchSeq, r]));
    this.pendingBySeq = new Map((recorded ?? []).filter((r) => r.versionId === null).map((r) => [r.batchSeq, r]));
  }

  add(f: FetchedBatch): void {
    const tenant = this.tenant;
    const problems = this.problems;
    const at = { tenant, key: f.key, versionId: f.versionId, batchSeq: f.batchSeq };
    if (f.batchSeq < this.expectedBatchSeq) throw new Error(`audit proof: batches out of order at ${f.key}`);
    this.seen.add(f.batchSeq);
    this.batches++;
    if (f.batchSeq > this.expectedBatchSeq) {
      problems.push({
        kind: 'missing_batch',
        tenant,
        batchSeq: this.expectedBatchSeq,
        detail: `batches ${this.expectedBatchSeq}..${f.batchSeq - 1} are missing before ${f.key}`,
      });
    }
    const sha = sha256Hex(f.body);
    const rec = this.recordedBySeq?.get(f.batchSeq);
    if (f.metadataSha256 !== undefined && f.metadataSha256 !== sha) {
      problems.push({ kind: 'altered', ...at, detail: `bytes hash to ${sha}, object metadata says ${f.metadataSha256}` });
    }
    // A well-formed batch linked onto the head proves nothing by its chain: only the shipper's
    // record (or its pending upload, same bytes) says the server wrote it.
    if (this.recordedBySeq && !rec) {
      const pending = this.pendingBySeq.get(f.batchSeq);
      if (pending?.sha256 !== sha) {
        problems.push({
          kind: 'unexpected_object',
          ...at,
          detail: pending
            ? `bytes hash to ${sha}, the batch pending upload hashes to ${pending.sha256}`
            : `the control plane has no record of shipping batch ${f.batchSeq} (recorded: ${this.recordedBySeq.size} batches)`,
        });
      }
    }
    if (rec && rec.sha256 !== sha) problems.push({ kind: 'altered', ...at, detail: `bytes hash to ${sha}, the control plane recorded ${rec.sha256}` });
    if (rec && rec.versionId !== f.versionId) {
      problems.push({ kind: 'altered', ...at, detail: `version ${f.versionId} is not the shipped version ${rec.versionId}` });
    }
    if (f.lockMode !== 'COMPLIANCE') problems.push({ kind: 'not_locked', ...at, detail: `retention mode ${f.lockMode ?? 'none'}, expected COMPLIANCE` });
    const decoded = decodeAuditBatch(f.body);
    for (const p of decoded.problems) problems.push({ kind: 'bad_batch', ...at, detail: p });
    const b = decoded.batch;
    if (b) {
      if (b.tenant !== tenant || b.batchSeq !== f.batchSeq) {
        problems.push({ kind: 'bad_batch', ...at, detail: `batch says tenant ${b.tenant} #${b.batchSeq}, its key says ${tenant} #${f.batchSeq}` });
      }
      // Links are checked only across adjacent batch numbers; a missing batch is named above.
      if (f.batchSeq === this.expectedBatchSeq) {
        if (b.prevSha256 !== this.prevSha) {
          problems.push({ kind: 'chain_break', ...at, detail: `prevSha256 ${b.prevSha256}, previous batch hashes to ${this.prevSha}` });
        }
        if (b.firstSeq !== this.prevLastSeq + 1) {
          problems.push({ kind: 'gap', ...at, detail: `starts at seq ${b.firstSeq}, previous batch ended at ${this.prevLastSeq}` });
        }
      }
      this.events += b.events.length;
      this.prevLastSeq = b.lastSeq;
    }
    this.prevSha = sha;
    this.expectedBatchSeq = f.batchSeq + 1;
  }

  finish(): { summary: AuditTenantSummary; problems: AuditProblem[] } {
    for (const rec of this.recordedBySeq?.values() ?? []) {
      if (!this.seen.has(rec.batchSeq)) {
        this.problems.push({
          kind: 'missing_batch',
          tenant: this.tenant,
          key: rec.key,
          ...(rec.versionId ? { versionId: rec.versionId } : {}),
          batchSeq: rec.batchSeq,
          detail: `shipped batch ${rec.key} is not in the bucket`,
        });
      }
    }
    return {
      summary: { tenant: this.tenant, batches: this.batches, events: this.events, lastSeq: this.prevLastSeq, headSha256: this.prevSha },
      problems: this.problems,
    };
  }
}

/** The proof over batches already in hand (sorted by batchSeq). */
export function checkAuditChain(
  tenant: string,
  fetched: readonly FetchedBatch[],
  recorded?: readonly AuditBatchRecord[],
): { summary: AuditTenantSummary; problems: AuditProblem[] } {
  const proof = new AuditChainProof(tenant, recorded);
  for (const f of fetched) proof.add(f);
  return proof.finish();
}

/**
 * The hole in a tenant's staging, if its rows do not run gap-free from its last shipped seq to
 * its next one: a staged event removed before it shipped is lost to the chain for good.
 */
export function stagingGap(span: AuditStagingSpan): AuditProblem | undefined {
  const from = span.shippedThroughSeq + 1;
  const to = span.nextSeq - 1;
  const expected = to - from + 1;
  const whole = span.staged === expected && (expected === 0 || (span.stagedFirstSeq === from && span.stagedLastSeq === to));
  if (whole) return undefined;
  const held = span.staged === 0 ? 'none' : `${span.staged} (seq ${span.stagedFirstSeq}..${span.stagedLastSeq})`;
  return {
    kind: 'gap',
    tenant: span.tenant,
    detail: `staging must hold seq ${from}..${to} (${Math.max(0, expected)} events, last shipped ${span.shippedThroughSeq}, next ${span.nextSeq}), Postgres holds ${held}`,
  };
}

interface KeyVersions {
  readonly key: string;
  /** Newest first, as S3 lists them. */
  readonly versions: ObjectVersion[];
  readonly deleteMarkers: DeleteMarkerEntry[];
}

/** The audit prefix of the tenant named, or of every tenant with objects in the bucket. */
async function auditPrefixes(bucket: AuditBucket, tenant: string | undefined): Promise<string[]> {
  if (tenant !== undefined) return [auditTenantPrefix(tenant)];
  const prefixes: string[] = [];
  let keyMarker: string | undefined;
  for (;;) {
    // One level down only: a tenant's backups sit beside its audit prefix and are no audit.
    const page = await bucket.client.send(
      new ListObjectVersionsCommand({ Bucket: bucket.bucket, Prefix: auditKeyPrefix, Delimiter: '/', KeyMarker: keyMarker, MaxKeys: 1000 }),
    );
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) prefixes.push(auditTenantPrefix(p.Prefix.slice(auditKeyPrefix.length, -1)));
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
  }
  return prefixes;
}

async function listVersions(bucket: AuditBucket, prefixes: readonly string[]): Promise<Map<string, KeyVersions>> {
  const byKey = new Map<string, KeyVersions>();
  const entry = (key: string) => {
    let e = byKey.get(key);
    if (!e) byKey.set(key, (e = { key, versions: [], deleteMarkers: [] }));
    return e;
  };
  let seen = 0;
  for (const prefix of prefixes) {
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (;;) {
      const page = await bucket.client.send(
        new ListObjectVersionsCommand({ Bucket: bucket.bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker, MaxKeys: 1000 }),
      );
      for (const v of page.Versions ?? []) if (v.Key) entry(v.Key).versions.push(v);
      for (const d of page.DeleteMarkers ?? []) if (d.Key) entry(d.Key).deleteMarkers.push(d);
      seen += (page.Versions?.length ?? 0) + (page.DeleteMarkers?.length ?? 0);
      if (seen > verifyVersionsMax) throw new Error(`more than ${verifyVersionsMax} audit object versions: verify one tenant at a time`);
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      versionIdMarker = page.NextVersionIdMarker;
    }
  }
  return byKey;
}

async function fetchBatch(bucket: AuditBucket, key: string, batchSeq: number, versionId: string): Promise<FetchedBatch> {
  const object = await bucket.client.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: key, VersionId: versionId }));
  if ((object.ContentLength ?? 0) > auditBatchBytesMax) throw new Error(`${key} is larger than ${auditBatchBytesMax} bytes`);
  const body = Buffer.from(await object.Body!.transformToByteArray());
  let lockMode: string | undefined;
  try {
    const retention = await bucket.client.send(new GetObjectRetentionCommand({ Bucket: bucket.bucket, Key: key, VersionId: versionId }));
    lockMode = retention.Retention?.Mode;
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw error;
  }
  return { key, batchSeq, versionId, body, metadataSha256: object.Metadata?.sha256, ...(lockMode ? { lockMode } : {}) };
}

export interface VerifyOptions {
  readonly tenant?: string;
  /** When given, its records of shipped batches are checked against the bucket too. */
  readonly control?: ControlPlane;
}

export async function verifyAudit(bucket: AuditBucket, options: VerifyOptions = {}): Promise<AuditReport> {
  const byKey = await listVersions(bucket, await auditPrefixes(bucket, options.tenant));
  const recorded = options.control ? await options.control.auditBatches(options.tenant) : [];
  const problems: AuditProblem[] = [];
  const perTenant = new Map<string, Array<{ key: string; batchSeq: number; versionId: string }>>();
  const recordedByKey = new Map(recorded.filter((r) => r.versionId !== null).map((r) => [r.key, r]));
  for (const k of byKey.values()) {
    const parsed = parseAuditBatchKey(k.key);
    const tenant = parsed?.tenant ?? k.key.split('/')[1] ?? '';
    if (!parsed) {
      problems.push({ kind: 'unexpected_object', tenant, key: k.key, detail: 'not an audit batch key' });
      continue;
    }
    for (const d of k.deleteMarkers) {
      problems.push({ kind: 'delete_marker', tenant, key: k.key, versionId: d.VersionId, batchSeq: parsed.batchSeq, detail: 'a delete marker hides this batch' });
    }
    if (k.versions.length === 0) continue;
    // The shipped version: the one the control plane recorded, else the oldest.
    const shippedId = recordedByKey.get(k.key)?.versionId ?? k.versions[k.versions.length - 1]!.VersionId!;
    for (const v of k.versions) {
      if (v.VersionId !== shippedId) {
        problems.push({ kind: 'extra_version', tenant, key: k.key, versionId: v.VersionId, batchSeq: parsed.batchSeq, detail: `a version besides the shipped ${shippedId}` });
      }
    }
    const chosen = k.versions.some((v) => v.VersionId === shippedId) ? shippedId : k.versions[k.versions.length - 1]!.VersionId!;
    const list = perTenant.get(tenant) ?? [];
    list.push({ key: k.key, batchSeq: parsed.batchSeq, versionId: chosen });
    perTenant.set(tenant, list);
  }
  for (const r of recorded) if (r.versionId !== null && !perTenant.has(r.tenant)) perTenant.set(r.tenant, []);
  const tenants: AuditTenantSummary[] = [];
  for (const [tenant, list] of [...perTenant.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    list.sort((a, b) => a.batchSeq - b.batchSeq);
    const proof = new AuditChainProof(tenant, options.control ? recorded.filter((r) => r.tenant === tenant) : undefined);
    // A window of concurrent fetches at a time: bodies are dropped once their link is proven.
    for (let i = 0; i < list.length; i += fetchConcurrency) {
      const window = list.slice(i, i + fetchConcurrency);
      const fetched = await Promise.all(window.map((x) => fetchBatch(bucket, x.key, x.batchSeq, x.versionId)));
      for (const f of fetched) proof.add(f);
    }
    const checked = proof.finish();
    tenants.push(checked.summary);
    problems.push(...checked.problems);
  }
  for (const span of options.control ? await options.control.auditStagingSpans(options.tenant) : []) {
    const gap = stagingGap(span);
    if (gap) problems.push(gap);
  }
  return { ok: problems.length === 0, tenants, problems };
}
