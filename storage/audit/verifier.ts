/**
 * `audit verify`: walks every object version under each tenant's audit prefix
 * (`tenants/{tenant}/audit/`, not the backups beside it) and proves, per tenant,
 * that the chain is whole: batches 1..n each present once, each under COMPLIANCE retention,
 * each's bytes hashing to what the next batch (and the control plane, when reachable)
 * recorded, sequences contiguous across batches and counts equal to their events; with the
 * control plane, a batch it has no record of shipping is unexpected, however well it links,
 * and the staged events not yet shipped must run gap-free up to the tenant's next seq. Given the
 * tenants' stores on this machine, each store's access-log rows are compared with the trail too
 * (store-cross-check.ts): what Postgres forgot or rewrote is seen there. Every problem is named
 * (tenant, key, version); none is fatal to the walk.
 */
import {
  GetObjectCommand,
  GetObjectRetentionCommand,
  ListObjectVersionsCommand,
  type ObjectVersion,
  type DeleteMarkerEntry,
} from '@aws-sdk/client-s3';
import { accessLogSource } from '../control/audit-staging.js';
import { auditHoleSource, type AuditBatchRecord, type AuditStagingSpan, type ControlPlane } from '../control/control-plane.js';
import { auditBatchBytesMax, auditKeyPrefix, auditTenantPrefix, decodeAuditBatch, genesisSha256, parseAuditBatchKey, sha256Hex, type AuditBatch } from './batch.js';
import type { AuditBucket } from './audit-bucket.js';
import type { AuditProblem } from './audit-problem.js';
import { StoreTrailCheck, vanishedStoreCode, type OpenedTenantStore, type StoreCheckSummary, type TenantStores } from './store-cross-check.js';

/** A bucket listing longer than this is refused rather than held in memory. */
export const verifyVersionsMax = 5_000_000;
const fetchConcurrency = 8;
/** Staged events read per query while a store is cross-checked. */
export const stagedTrailPageRowsMax = 1_000;

export interface AuditTenantSummary {
  readonly tenant: string;
  readonly batches: number;
  readonly events: number;
  readonly lastSeq: number;
  readonly headSha256: string;
  /**
   * Events the chain records as lost (`audit close-gap`: removed from staging before they
   * shipped), when there are any: no problem, the chain says so itself, but an auditor must see it.
   */
  readonly eventsLost?: { readonly count: number; readonly seqs: string };
}

/** Ranges of lost seqs named in a report, at most (the count says how many seqs there are). */
export const lostSeqRangesListedMax = 20;

export interface AuditReport {
  readonly ok: boolean;
  readonly tenants: readonly AuditTenantSummary[];
  /** One per tenant store cross-checked; absent when the stores were not checked. */
  readonly stores?: readonly StoreCheckSummary[];
  readonly problems: readonly AuditProblem[];
  /** Versions besides a shipped one holding its very bytes under COMPLIANCE (an upload sent twice): nothing altered, so no problem. */
  readonly duplicateVersions?: readonly DuplicateVersion[];
}

export interface DuplicateVersion {
  readonly tenant: string;
  readonly key: string;
  readonly versionId: string;
  readonly shippedVersionId: string;
}

/** One batch as fetched: the version chosen as the shipped one. */
export interface FetchedBatch {
  readonly key: string;
  readonly batchSeq: number;
  readonly versionId: string;
  readonly body: Buffer;
  readonly metadataSha256?: string;
  readonly lockMode?: string;
  /** When its retention ends, and when it was written (S3's clock). */
  readonly retainUntilMs?: number;
  readonly writtenAtMs?: number;
}

const dayMs = 86_400_000;
/** Clock skew between the shipper and S3 a batch's retention may show without being short. */
export const retentionSlackMs = dayMs;

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
  private lostCount = 0;
  /** Ranges [from, to] of seqs recorded lost, in chain order. */
  private readonly lostRanges: [number, number][] = [];

  constructor(
    readonly tenant: string,
    /** The control plane's records of this tenant's batches, when it is cross-checked. */
    recorded?: readonly AuditBatchRecord[],
    /** The retention every batch must have from when it was written (IOBOXX_AUDIT_RETENTION_DAYS); unchecked when absent. */
    private readonly retentionDays?: number,
  ) {
    this.recordedBySeq = recorded && new Map(recorded.filter((r) => r.versionId !== null).map((r) => [r.batchSeq, r]));
    this.pendingBySeq = new Map((recorded ?? []).filter((r) => r.versionId === null).map((r) => [r.batchSeq, r]));
  }

  /** Proves the next batch's link; returns the batch as decoded (undefined when it does not decode). */
  add(f: FetchedBatch): AuditBatch | undefined {
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
    else if (this.retentionDays !== undefined && f.retainUntilMs !== undefined && f.writtenAtMs !== undefined) {
      // A shipper run with a shorter retention leaves batches that can be deleted early, chain and all.
      const heldDays = (f.retainUntilMs - f.writtenAtMs) / dayMs;
      if (f.retainUntilMs < f.writtenAtMs + this.retentionDays * dayMs - retentionSlackMs) {
        problems.push({
          kind: 'short_retention',
          ...at,
          detail: `retained until ${new Date(f.retainUntilMs).toISOString()}, ${heldDays.toFixed(1)} days after it was written on ${new Date(f.writtenAtMs).toISOString()}; the retention is ${this.retentionDays} days`,
        });
      }
    }
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
      for (const e of b.events) if (e.source === auditHoleSource) this.noteLost(e.seq);
      this.prevLastSeq = b.lastSeq;
    }
    this.prevSha = sha;
    this.expectedBatchSeq = f.batchSeq + 1;
    return b;
  }

  private noteLost(seq: number): void {
    this.lostCount += 1;
    const last = this.lostRanges.at(-1);
    if (last !== undefined && last[1] === seq - 1) last[1] = seq;
    else this.lostRanges.push([seq, seq]);
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
      summary: {
        tenant: this.tenant, batches: this.batches, events: this.events, lastSeq: this.prevLastSeq, headSha256: this.prevSha,
        ...(this.lostCount > 0 && { eventsLost: { count: this.lostCount, seqs: seqRanges(this.lostRanges) } }),
      },
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

/** The versions under `prefixes`, by key; under a prefix `afterKeyOf` names a key for, only the keys after it. */
async function listVersions(bucket: AuditBucket, prefixes: readonly string[], afterKeyOf?: (prefix: string) => string | undefined): Promise<Map<string, KeyVersions>> {
  const byKey = new Map<string, KeyVersions>();
  const entry = (key: string) => {
    let e = byKey.get(key);
    if (!e) byKey.set(key, (e = { key, versions: [], deleteMarkers: [] }));
    return e;
  };
  let seen = 0;
  for (const prefix of prefixes) {
    let keyMarker = afterKeyOf?.(prefix);
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

/**
 * Adds to `byKey` the batches shipped since it was listed that `recorded` (read after the listing)
 * names: a shipper beside the verify uploads and confirms its tenants' next batches meanwhile, and
 * a long listing gives it time. Each such tenant is listed again past its last listed key, and only
 * recorded keys are taken (a batch formed since the records were read is not known to them yet).
 */
async function listShippedSince(bucket: AuditBucket, byKey: Map<string, KeyVersions>, recorded: readonly AuditBatchRecord[]): Promise<void> {
  const unlisted = new Set(recorded.filter((r) => r.versionId !== null && !byKey.has(r.key)).map((r) => r.key));
  if (unlisted.size === 0) return;
  const lastListed = new Map<string, string>();
  for (const key of byKey.keys()) {
    const tenant = parseAuditBatchKey(key)?.tenant;
    // Batch keys are ASCII: this order is S3's.
    if (tenant !== undefined && key > (lastListed.get(tenant) ?? '')) lastListed.set(tenant, key);
  }
  const tenants = new Set([...unlisted].map((key) => parseAuditBatchKey(key)!.tenant));
  const prefixes = new Map([...tenants].map((tenant) => [auditTenantPrefix(tenant), lastListed.get(tenant)]));
  const since = await listVersions(bucket, [...prefixes.keys()], (prefix) => prefixes.get(prefix));
  for (const [key, versions] of since) if (unlisted.has(key)) byKey.set(key, versions);
}

async function fetchBatch(bucket: AuditBucket, key: string, batchSeq: number, versionId: string): Promise<FetchedBatch> {
  const object = await bucket.client.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: key, VersionId: versionId }));
  if ((object.ContentLength ?? 0) > auditBatchBytesMax) throw new Error(`${key} is larger than ${auditBatchBytesMax} bytes`);
  const body = Buffer.from(await object.Body!.transformToByteArray());
  let lockMode: string | undefined;
  let retainUntilMs: number | undefined;
  try {
    const retention = await bucket.client.send(new GetObjectRetentionCommand({ Bucket: bucket.bucket, Key: key, VersionId: versionId }));
    lockMode = retention.Retention?.Mode;
    retainUntilMs = retention.Retention?.RetainUntilDate?.getTime();
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw error;
  }
  const writtenAtMs = object.LastModified?.getTime();
  return {
    key, batchSeq, versionId, body, metadataSha256: object.Metadata?.sha256, ...(lockMode ? { lockMode } : {}),
    ...(retainUntilMs !== undefined && { retainUntilMs }), ...(writtenAtMs !== undefined && { writtenAtMs }),
  };
}

export interface VerifyOptions {
  readonly tenant?: string;
  /** When given, its records of shipped batches are checked against the bucket too. */
  readonly control?: ControlPlane;
  /** The tenants' stores on this machine, to cross-check their access logs with the trail (needs `control`). */
  readonly stores?: TenantStores;
  /** Batches proven of all listed (phase `batches`), stores checked of all (phase `stores`), rows read of the store being checked (phase `store rows`). */
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** The retention each batch must have (IOBOXX_AUDIT_RETENTION_DAYS): a shorter one is short_retention. */
  readonly retentionDays?: number;
}

/**
 * Feeds `check` the tenant's trail after chain seq `afterSeq` (where the walk of the bucket
 * ended): the staged events, and a batch shipped since the bucket was listed (its events then
 * left staging) read from S3 by the control plane's record, so a shipper running beside the
 * verify never makes an event look missing.
 */
async function feedStagedTrail(bucket: AuditBucket, control: ControlPlane, tenant: string, afterSeq: number, check: StoreTrailCheck): Promise<void> {
  let after = afterSeq;
  for (;;) {
    const page = await control.stagedAudit(tenant, { afterSeq: after, limit: stagedTrailPageRowsMax });
    if (page[0]?.seq !== after + 1) {
      const shipped = (await control.auditBatches(tenant)).find((r) => r.versionId !== null && r.firstSeq === after + 1);
      if (shipped) {
        const batch = decodeAuditBatch((await fetchBatch(bucket, shipped.key, shipped.batchSeq, shipped.versionId!)).body).batch;
        for (const e of batch?.events ?? []) await check.trailEvent(e, { key: shipped.key, batchSeq: shipped.batchSeq });
        // A batch that does not decode is named by the chain proof of the next verify; past it, staging goes on.
        after = batch?.lastSeq ?? shipped.lastSeq;
        continue;
      }
      // Not shipped either: a hole the staging gap names; the events past it still count.
      if (page.length === 0) return;
    }
    for (const e of page) await check.trailEvent(e, {});
    after = page[page.length - 1]!.seq;
  }
}

/** The tenant's store opened read-only and its check begun, or why it could not be opened. */
async function beginStoreCheck(
  tenant: string,
  stores: TenantStores,
  control: ControlPlane,
  onProgress: VerifyOptions['onProgress'],
): Promise<{ check: StoreTrailCheck; opened: OpenedTenantStore } | AuditProblem> {
  // Read before the store and the trail: every row staged by then is in S3 or staging when they are read.
  // The store holds the history of the source's current generation; the ones before it ended.
  const mark = await control.auditSourceMark(tenant, accessLogSource);
  let opened: OpenedTenantStore;
  try {
    opened = await stores.open(tenant);
  } catch (error) {
    const e = error as Error & { code?: unknown; hint?: string };
    const hint = e.hint ? ` (${e.hint})` : '';
    // A known tenant's store gone (`tenants list` says VANISHED): nothing to compare, and its unstaged rows are in no trail.
    if (e.code === vanishedStoreCode) {
      return { kind: 'store_vanished', tenant, detail: `${e.message}: its access-log rows not staged yet are in no trail, and none of its rows can be checked${hint}` };
    }
    return { kind: 'store_unreadable', tenant, detail: `its store was not opened read-only, so its access log is unchecked: ${e.message}${hint}` };
  }
  const check = new StoreTrailCheck(tenant, opened.accessLog, mark.source, mark.stagedThrough, opened.openByPid, (done, total) => onProgress?.('store rows', done, total));
  return { check, opened };
}

export async function verifyAudit(bucket: AuditBucket, options: VerifyOptions = {}): Promise<AuditReport> {
  const byKey = await listVersions(bucket, await auditPrefixes(bucket, options.tenant));
  const recorded = options.control ? await options.control.auditBatches(options.tenant) : [];
  await listShippedSince(bucket, byKey, recorded);
  const problems: AuditProblem[] = [];
  const perTenant = new Map<string, Array<{ key: string; batchSeq: number; versionId: string }>>();
  const extras: Array<{ tenant: string; key: string; batchSeq: number; versionId: string; shippedId: string; chosen: string }> = [];
  const duplicateVersions: DuplicateVersion[] = [];
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
    const chosen = k.versions.some((v) => v.VersionId === shippedId) ? shippedId : k.versions[k.versions.length - 1]!.VersionId!;
    for (const v of k.versions) {
      if (v.VersionId !== shippedId) extras.push({ tenant, key: k.key, batchSeq: parsed.batchSeq, versionId: v.VersionId!, shippedId, chosen });
    }
    const list = perTenant.get(tenant) ?? [];
    list.push({ key: k.key, batchSeq: parsed.batchSeq, versionId: chosen });
    perTenant.set(tenant, list);
  }
  for (const r of recorded) if (r.versionId !== null && !perTenant.has(r.tenant)) perTenant.set(r.tenant, []);
  // A second version is a problem unless it is the chosen version's very bytes under COMPLIANCE.
  for (const x of extras) {
    const [extra, shipped] = await Promise.all([fetchBatch(bucket, x.key, x.batchSeq, x.versionId), fetchBatch(bucket, x.key, x.batchSeq, x.chosen)]);
    if (x.chosen === x.shippedId && extra.lockMode === 'COMPLIANCE' && extra.body.equals(shipped.body)) {
      duplicateVersions.push({ tenant: x.tenant, key: x.key, versionId: x.versionId, shippedVersionId: x.shippedId });
    } else {
      problems.push({ kind: 'extra_version', tenant: x.tenant, key: x.key, versionId: x.versionId, batchSeq: x.batchSeq, detail: `a version besides the shipped ${x.shippedId}` });
    }
  }
  const tenants: AuditTenantSummary[] = [];
  const storeTenants = new Set(options.stores?.tenants.filter((t) => options.tenant === undefined || t === options.tenant));
  if (storeTenants.size > 0 && !options.control) throw new Error('audit verify: the store cross-check needs the control plane');
  const storeSummaries: StoreCheckSummary[] = [];
  let storesDone = 0;
  // A long chain is fetched a window at a time: say how far, or a verify of hours looks hung.
  const batchesTotal = [...perTenant.values()].reduce((n, list) => n + list.length, 0);
  let batchesDone = 0;
  const everyTenant = [...new Set([...perTenant.keys(), ...storeTenants])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const tenant of everyTenant) {
    const begun = storeTenants.has(tenant) ? await beginStoreCheck(tenant, options.stores!, options.control!, options.onProgress) : undefined;
    const store = begun && 'check' in begun ? begun : undefined;
    if (begun && !store) problems.push(begun as AuditProblem);
    try {
      let lastSeq = 0;
      const list = perTenant.get(tenant);
      if (list) {
        list.sort((a, b) => a.batchSeq - b.batchSeq);
        const proof = new AuditChainProof(tenant, options.control ? recorded.filter((r) => r.tenant === tenant) : undefined, options.retentionDays);
        // A window of concurrent fetches at a time: bodies are dropped once their link is proven.
        for (let i = 0; i < list.length; i += fetchConcurrency) {
          const window = list.slice(i, i + fetchConcurrency);
          const fetched = await Promise.all(window.map((x) => fetchBatch(bucket, x.key, x.batchSeq, x.versionId)));
          for (const f of fetched) {
            const batch = proof.add(f);
            if (store && batch) for (const e of batch.events) await store.check.trailEvent(e, { key: f.key, batchSeq: f.batchSeq });
          }
          batchesDone += window.length;
          options.onProgress?.('batches', batchesDone, batchesTotal);
        }
        const checked = proof.finish();
        tenants.push(checked.summary);
        problems.push(...checked.problems);
        lastSeq = checked.summary.lastSeq;
      }
      if (store) {
        const control = options.control!;
        await feedStagedTrail(bucket, control, tenant, lastSeq, store.check);
        const checked = await store.check.finish({
          stagedThroughSeqNow: await control.stagedThrough(tenant, store.check.source),
          workWaiting: await store.opened.workWaiting(),
          live: store.opened.openByPid !== null || store.opened.heldNow(),
          nowMs: Date.now(),
        });
        storeSummaries.push(checked.summary);
        problems.push(...checked.problems);
      }
    } finally {
      await store?.opened.close();
    }
    if (begun) options.onProgress?.('stores', ++storesDone, storeTenants.size);
  }
  for (const span of options.control ? await options.control.auditStagingSpans(options.tenant) : []) {
    const gap = stagingGap(span);
    if (gap) problems.push(gap);
  }
  return {
    ok: problems.length === 0, tenants, ...(options.stores ? { stores: storeSummaries } : {}), problems,
    ...(duplicateVersions.length > 0 && { duplicateVersions }),
  };
}

/** "2, 5..9" for the first lostSeqRangesListedMax ranges, then how many more. */
function seqRanges(ranges: readonly [number, number][]): string {
  const listed = ranges.slice(0, lostSeqRangesListedMax).map(([from, to]) => seqRangeText(from, to));
  const more = ranges.length - listed.length;
  return listed.join(', ') + (more > 0 ? ` and ${more} more ranges` : '');
}

/** "2" or "5..9": a range of audit seqs as reports name it. */
export function seqRangeText(from: number, to: number): string {
  return from === to ? `${from}` : `${from}..${to}`;
}
