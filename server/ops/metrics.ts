/**
 * The server's Prometheus metrics, in one registry (`prom-client`). The engine knows nothing
 * of it: a store reports each durable batch through `StoreOptions.onBatch` (see `onBatch`
 * below) and the server pushes or exposes the rest.
 *
 * What never goes into a metric: tokens, claims, object ids or contents, tenant ids. Every
 * label value comes from a closed list fixed here (anything else is counted as `other`), so no
 * caller-supplied string can reach the exposition text.
 */
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { authFailureReasons } from '../auth/auth-error.js';
import { SnapshotNotTaken, snapshotNotTakenReasons, StoreFailed, storeFailureKinds, WriteNotApplied } from '../../storage/errors.js';
import type { RowBytes } from '../../storage/row-arena.js';
import type { BatchInfo } from '../../storage/store.js';
import { degradedStates, type DegradedState } from './degraded-tenants.js';

export const metricsPrefix = 'ioboxx_';

/** Seconds: fdatasync on these machines is ~0.4 ms p50, ~1 ms p99, worst seen ~15 ms (DESIGN §4). */
const latencyBucketsSeconds = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const batchTxBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
const batchBytesBuckets = [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 8_388_608];

export const subscriptionDropReasons = ['buffer_full', 'slow_consumer', 'limit', 'other'] as const;
export type SubscriptionDropReason = (typeof subscriptionDropReasons)[number];
export const busyLimits = ['queue', 'rate', 'store'] as const;
export type BusyLimit = (typeof busyLimits)[number];
/** Why a commit failed: a write the disk refused (rolled back, the store goes on), or the store failing (it refuses writes until reopened). */
export const commitFailureReasons = ['write_failed', ...storeFailureKinds] as const;
/** Why a tenant store could not be opened: the errno or engine code (server/tenants/open-refusal.ts); any other is `other`. */
export const storeOpenFailureCodes = ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO', 'EMFILE', 'ENFILE', 'damaged_store', 'table_not_in_module', 'vanished_store', 'conflict', 'other'] as const;

/** Pulled at scrape time; each may be absent (e.g. no audit shipping configured). */
export interface MetricsProbes {
  readonly openTenants?: () => number;
  /** Estimated memory of the open tenant stores (registry.ts), and the budget it is held under. */
  readonly storesMemoryBytes?: () => number;
  readonly storesMemoryBytesMax?: () => number;
  /** Arena bytes of the open tenants' rows, summed. */
  readonly rowBytes?: () => RowBytes;
  /** Largest number of committed transactions not yet delivered to any one subscriber. */
  readonly subscriptionLagMax?: () => number;
  /** Audit events staged and not yet shipped to S3. May query Postgres; throws when it cannot (the gauge is then NaN). */
  readonly auditBacklog?: () => number | Promise<number>;
  /** Whether the control plane (Postgres) answers now, within a bound. */
  readonly controlPlaneUp?: () => boolean | Promise<boolean>;
  /** When the last audit batch reached S3 (ms since epoch), or undefined if none yet. */
  readonly auditLastShippedAtMs?: () => number | undefined | Promise<number | undefined>;
  /** Free bytes on the data directory's filesystem (statfs); throws when it cannot tell (the gauge is then NaN). */
  readonly dataDirFreeBytes?: () => Promise<number>;
  /** Tenants in trouble now, by state (degraded-tenants.ts). */
  readonly degradedTenants?: () => Record<DegradedState, number>;
  /** Access-log rows recorded and not yet appended to their tenant's store (server/audit/access-recorder.ts). */
  readonly accessRowsWaiting?: () => number;
}

export interface OpsMetricsOptions {
  readonly probes?: MetricsProbes;
  /** Node process metrics (memory, event loop lag, GC); default true. */
  readonly processMetrics?: boolean;
  readonly nowMs?: () => number;
}

function closed<T extends string>(allowed: readonly T[], value: string): T | 'other' {
  return (allowed as readonly string[]).includes(value) ? (value as T) : 'other';
}

/**
 * A probe read at scrape time that has not answered within this is unknown now. A Postgres that
 * stalls (a lock held on the staging table, a network that drops packets) answers after its
 * query timeout, 30 s: the scrape waited for it, past Prometheus's scrape_timeout (10 s by
 * default), which then dropped every metric, control_plane_up among them.
 */
export const scrapeProbeMsMax = 2_000;

/** `probe`'s answer, or a rejection once it has taken scrapeProbeMsMax. */
function probeWithinScrape(probe: () => number | Promise<number>): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${scrapeProbeMsMax} ms`)), scrapeProbeMsMax);
  });
  return Promise.race([Promise.resolve().then(probe), late]).finally(() => clearTimeout(timer));
}

/**
 * A gauge read from `probe` at scrape time. A probe that throws (Postgres away, statfs failing)
 * or does not answer in time must not cost the scrape every other metric: the gauge is then NaN, "unknown now".
 */
function unknownWhenFailingGauge(name: string, help: string, registers: Registry[], probe: (() => number | Promise<number>) | undefined): void {
  new Gauge({
    name, help, registers,
    async collect() {
      if (probe) this.set(await probeWithinScrape(probe).catch(() => Number.NaN));
    },
  });
}

/** A gauge with one series per `state`, all read from one `probe` call at scrape time. */
function gaugeByState<S extends string>(name: string, help: string, registers: Registry[], states: readonly S[], probe: (() => Record<S, number>) | undefined): void {
  new Gauge({
    name, help, labelNames: ['state'], registers,
    collect() {
      if (!probe) return;
      const values = probe();
      for (const state of states) this.set({ state }, values[state]);
    },
  });
}

export class OpsMetrics {
  readonly registry = new Registry();
  private readonly commitLatency: Histogram;
  private readonly fdatasync: Histogram;
  private readonly logWrite: Histogram;
  private readonly batchTransactions: Histogram;
  private readonly batchBytes: Histogram;
  private readonly batchesSyncedInline: Counter;
  private readonly commits: Counter;
  private readonly subscriptionDrops: Counter<'reason'>;
  private readonly authFailures: Counter<'reason'>;
  private readonly busyRejections: Counter<'limit'>;
  private readonly commitFailures: Counter<'reason'>;
  private readonly snapshotFailures: Counter<'reason'>;
  private readonly storeOpenFailures: Counter<'code'>;
  private readonly failedStoreReopens: Counter;
  private readonly accessRowsLost: Counter;
  private readonly denialsLost: Counter;

  constructor(options: OpsMetricsOptions = {}) {
    const registers = [this.registry];
    const probes = options.probes ?? {};
    const nowMs = options.nowMs ?? Date.now;
    this.commitLatency = new Histogram({
      name: `${metricsPrefix}commit_latency_seconds`, help: 'Time from a write call to its acknowledgement (durable: after fdatasync).',
      buckets: latencyBucketsSeconds, registers,
    });
    this.fdatasync = new Histogram({
      name: `${metricsPrefix}fdatasync_seconds`, help: 'fdatasync of one group-commit batch.', buckets: latencyBucketsSeconds, registers,
    });
    this.logWrite = new Histogram({
      name: `${metricsPrefix}log_write_seconds`, help: 'writev of one group-commit batch (before its fdatasync).', buckets: latencyBucketsSeconds, registers,
    });
    this.batchTransactions = new Histogram({
      name: `${metricsPrefix}commit_batch_transactions`, help: 'Transactions per group-commit batch (one writev + one fdatasync).', buckets: batchTxBuckets, registers,
    });
    this.batchBytes = new Histogram({
      name: `${metricsPrefix}commit_batch_bytes`, help: 'Bytes per group-commit batch.', buckets: batchBytesBuckets, registers,
    });
    this.batchesSyncedInline = new Counter({
      name: `${metricsPrefix}commit_batches_synced_inline_total`,
      help: 'Group-commit batches whose fdatasync ran on the main thread (a lone small batch of an idle store); the others ran on the thread pool.',
      registers,
    });
    this.commits = new Counter({
      name: `${metricsPrefix}commits_total`, help: 'Durable transactions (rate() of it is commits per second).', registers,
    });
    new Gauge({
      name: `${metricsPrefix}open_tenants`, help: 'Tenant stores open now.', registers,
      collect() {
        if (probes.openTenants) this.set(probes.openTenants());
      },
    });
    new Gauge({
      name: `${metricsPrefix}stores_memory_bytes`, help: 'Estimated memory of the open tenant stores (row bytes plus a measured overhead per row), as last measured.', registers,
      collect() {
        if (probes.storesMemoryBytes) this.set(probes.storesMemoryBytes());
      },
    });
    new Gauge({
      name: `${metricsPrefix}stores_memory_budget_bytes`, help: 'Budget of stores_memory_bytes (IOBOXX_STORES_MEMORY_BYTES_MAX or half the machine): past it idle stores close, and opens wait.', registers,
      collect() {
        if (probes.storesMemoryBytesMax) this.set(probes.storesMemoryBytesMax());
      },
    });
    gaugeByState(
      `${metricsPrefix}row_bytes`,
      'Encoded row bytes the open tenants hold in memory: live rows, dead ones (replaced or deleted, until a compaction), spare chunks kept for reuse.',
      registers, ['live', 'dead', 'spare'], probes.rowBytes,
    );
    new Gauge({
      name: `${metricsPrefix}subscription_lag_transactions`, help: 'Largest backlog of durable transactions not yet sent to one subscriber.', registers,
      collect() {
        if (probes.subscriptionLagMax) this.set(probes.subscriptionLagMax());
      },
    });
    this.subscriptionDrops = new Counter({
      name: `${metricsPrefix}subscription_drops_total`, help: 'Subscriptions ended or updates dropped because a subscriber fell behind a limit.',
      labelNames: ['reason'], registers,
    });
    unknownWhenFailingGauge(`${metricsPrefix}audit_backlog_events`, 'Audit events staged in Postgres and not yet shipped to S3.', registers, probes.auditBacklog);
    new Gauge({
      name: `${metricsPrefix}control_plane_up`, help: 'Whether the control plane (Postgres) answers now: 1 yes, 0 no.', registers,
      async collect() {
        if (probes.controlPlaneUp) this.set((await probes.controlPlaneUp()) ? 1 : 0);
      },
    });
    new Gauge({
      name: `${metricsPrefix}audit_last_shipped_age_seconds`, help: 'Seconds since the last audit batch reached S3 (NaN: none since the server started).', registers,
      async collect() {
        if (!probes.auditLastShippedAtMs) return;
        const at = await probes.auditLastShippedAtMs();
        this.set(at === undefined ? Number.NaN : Math.max(0, (nowMs() - at) / 1000));
      },
    });
    unknownWhenFailingGauge(`${metricsPrefix}data_dir_free_bytes`, 'Free bytes on the data directory\'s filesystem, for an unprivileged writer (NaN: statfs failed).', registers, probes.dataDirFreeBytes);
    gaugeByState(
      `${metricsPrefix}tenant_stores_degraded`,
      'Tenants in trouble, by state: store_failed (open, refusing writes until reopened), open_failed (the last open failed, recently).',
      registers, degradedStates, probes.degradedTenants,
    );
    // The one event loop every tenant shares is the server's bound under load: its busy time
    // (callbacks run plus blocking calls made in them; not the time spent waiting for events)
    // per call is the figure to cut. Read at scrape time, counted from the process's start.
    let busyMsCounted = 0;
    new Counter({
      name: `${metricsPrefix}event_loop_busy_seconds_total`,
      help: 'Time the main thread\'s event loop spent running callbacks (not waiting for events), since the process started.',
      registers,
      collect() {
        const busyMs = performance.eventLoopUtilization().active;
        if (busyMs > busyMsCounted) this.inc((busyMs - busyMsCounted) / 1000);
        busyMsCounted = Math.max(busyMsCounted, busyMs);
      },
    });
    this.authFailures = new Counter({
      name: `${metricsPrefix}auth_failures_total`, help: 'Requests refused by authentication or authorisation, by reason.', labelNames: ['reason'], registers,
    });
    this.busyRejections = new Counter({
      name: `${metricsPrefix}busy_rejections_total`, help: 'Calls refused with a retryable busy error, by the limit that refused them: queue, rate, or store (their tenant store found no open slot or memory budget in time).', labelNames: ['limit'], registers,
    });
    this.commitFailures = new Counter({
      name: `${metricsPrefix}commit_failures_total`,
      help: 'Failed commits, by reason: write_failed (the disk refused a batch; its calls were rolled back, the store goes on), or the store failed and refuses writes until reopened (fdatasync_failed, files_deleted, writer_out_of_step).',
      labelNames: ['reason'], registers,
    });
    this.snapshotFailures = new Counter({
      name: `${metricsPrefix}snapshot_failures_total`,
      help: 'Snapshots a store takes on its own (periodic, before a close) not written, by reason: write_failed, or free_space_low (skipped). Nothing is lost: the log holds it.',
      labelNames: ['reason'], registers,
    });
    this.storeOpenFailures = new Counter({
      name: `${metricsPrefix}store_open_failures_total`, help: 'Tenant store opens that failed, by errno or engine code.', labelNames: ['code'], registers,
    });
    this.failedStoreReopens = new Counter({
      name: `${metricsPrefix}failed_store_reopens_total`,
      help: 'Failed tenant stores closed to be reopened (at most once per backoff, 5 s doubling to 5 min while they keep failing); an open that then fails counts in store_open_failures_total too.',
      registers,
    });
    new Gauge({
      name: `${metricsPrefix}access_log_rows_waiting`,
      help: 'Access-log rows recorded and not yet appended to their tenant\'s store: a few for milliseconds normally; while a disk is full they wait for room (not lost unless the server stops first).',
      registers,
      collect() {
        if (probes.accessRowsWaiting) this.set(probes.accessRowsWaiting());
      },
    });
    this.accessRowsLost = new Counter({
      name: `${metricsPrefix}access_log_rows_lost_total`, help: 'Access-log rows that could not be appended to their tenant\'s store (each also logged: "access log append failed").', registers,
    });
    this.denialsLost = new Counter({
      name: `${metricsPrefix}server_denials_lost_total`,
      help: 'Server-level audit denials (refusals before a caller is known) neither staged nor spooled (also logged: "server audit denials lost").', registers,
    });
    // Zero series for every closed label value: a rate() exists before the first event.
    for (const reason of authFailureReasons) this.authFailures.inc({ reason }, 0);
    for (const reason of subscriptionDropReasons) this.subscriptionDrops.inc({ reason }, 0);
    for (const limit of busyLimits) this.busyRejections.inc({ limit }, 0);
    for (const reason of commitFailureReasons) this.commitFailures.inc({ reason }, 0);
    for (const reason of snapshotNotTakenReasons) this.snapshotFailures.inc({ reason }, 0);
    for (const code of storeOpenFailureCodes) this.storeOpenFailures.inc({ code }, 0);
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: metricsPrefix });
  }

  /** Pass as `StoreOptions.onBatch` of every tenant store. */
  readonly onBatch = (info: BatchInfo): void => {
    this.commits.inc(info.count);
    this.batchTransactions.observe(info.count);
    this.batchBytes.observe(info.bytes);
    this.logWrite.observe(info.writeMs / 1000);
    this.fdatasync.observe(info.datasyncMs / 1000);
    if (info.syncedInline) this.batchesSyncedInline.inc();
    for (const ms of info.commitMs) this.commitLatency.observe(ms / 1000);
  };

  /** Pass every tenant store's background errors here too (`StoreOptions.onBackgroundError`): failures are counted by kind, the rest ignored. */
  readonly storeError = (error: unknown): void => {
    if (error instanceof StoreFailed) this.commitFailures.inc({ reason: error.kind });
    else if (error instanceof WriteNotApplied) this.commitFailures.inc({ reason: 'write_failed' });
    else if (error instanceof SnapshotNotTaken) this.snapshotFailures.inc({ reason: error.reason });
  };

  /** A tenant store could not be opened; `code` from storeOpenFailureCode. */
  storeOpenFailure(code: string | undefined): void {
    this.storeOpenFailures.inc({ code: closed(storeOpenFailureCodes, code ?? 'other') });
  }

  /** The registry closes a failed store to reopen it (its `closing` event with why `failed`). */
  failedStoreReopen(): void {
    this.failedStoreReopens.inc();
  }

  accessLogRowsLost(rows: number): void {
    this.accessRowsLost.inc(rows);
  }

  serverDenialsLost(count: number): void {
    this.denialsLost.inc(count);
  }

  authFailure(reason: string): void {
    this.authFailures.inc({ reason: closed(authFailureReasons, reason) });
  }

  subscriptionDrop(reason: string, count = 1): void {
    this.subscriptionDrops.inc({ reason: closed(subscriptionDropReasons, reason) }, count);
  }

  busyRejection(limit: BusyLimit): void {
    this.busyRejections.inc({ limit: closed(busyLimits, limit) });
  }

  /** The exposition text and its content type, for GET /metrics. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
