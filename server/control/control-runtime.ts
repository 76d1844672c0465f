/**
 * The control plane at run time: Postgres (or embedded PGlite) plus the background work that
 * moves data out of tenant stores — access log -> audit staging, run outbox -> run_history,
 * landed Keycloak events -> kc_* projections, staged audit -> S3 Object Lock batches.
 *
 * The commitlog is the first durable hop: none of this sits on a tool call's path, so tenant
 * writes go on while Postgres or S3 are down; the work is retried and drains later.
 */
import { assertObjectLockEnabled, openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { auditBatchEventsDefault, startAuditShipper, type AuditShipperLoop } from '../../storage/audit/shipper.js';
import type { ServerAuditEvent } from '../../storage/control/audit-staging.js';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { startControlWorker, type ControlWorker, type TenantAccess } from '../../storage/control/control-worker.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import { dayMs, kcLandingRetentionDaysDefault } from '../../storage/control/landing-retention.js';
import { MemoryError } from '../../storage/errors.js';
import { databaseRefusalHint, isDatabaseError } from '../../storage/control/database-error.js';
import type { TenantMemory } from '../../tools/memory.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { refusedUntilOperatorActs } from '../tenants/open-refusal.js';
import { clearControlPending, markControlPending } from './control-pending.js';
import { startServerDenials } from './server-denials.js';
import { drainTenantsInTurn, startupDrainTenantsMax } from './startup-drain.js';

export const retryDelayMsMin = 500;
export const retryDelayMsMax = 30_000;
/** A failed drain or projection (Postgres away) runs again after this. */
export const workRetryMs = 1_000;
export const projectorIntervalMs = 2_000;
export const shipperIntervalMs = 2_000;
/** Tenants remembered before Postgres is reachable; past it they wait for the next change. */
export const dirtyTenantsMax = 100_000;
/** How long close() waits for a control-plane connect still in progress. */
export const closeConnectWaitMs = 2_000;
/**
 * A drained tenant's control-pending mark is removed only once the tenant has gone this long
 * without a change: a working tenant keeps one mark (no write per drain), and a crash while it
 * works (after its access rows are in its store, before they are staged) leaves the mark, so the
 * next start stages them even if that tenant never calls again.
 */
export const pendingMarkQuietMs = 2_000;

export type WithTenant = <T>(tenant: string, fn: (memory: TenantMemory) => Promise<T>) => Promise<T>;

export interface ControlRuntime {
  /** Undefined until Postgres is reachable (retried in the background). */
  readonly control: ControlPlane | undefined;
  /** Why the last try to connect failed, with what to do when known (undefined: connected, or no try failed yet). */
  readonly connectProblem: string | undefined;
  readonly s3Configured: boolean;
  /** The audit bucket when S3 is configured (its readiness probe asks it). */
  readonly auditBucket: AuditBucket | undefined;
  /**
   * A tenant is about to commit work for the control plane (access rows): resolves once its
   * control-pending mark is on disk (at once while it is marked), so that no crash can leave
   * work in its store that the next start would not drain. A mark that cannot be written is
   * logged and does not hold the work back.
   */
  tenantChanging(tenant: string): Promise<void>;
  /** A tenant committed something: stage its access log and drain its outbox soon. */
  tenantChanged(tenant: string): void;
  /** A server-level denial (no tenant store involved): staged straight to Postgres, spooled to disk while it is away or slow (server-denials.ts). */
  auditDenial(event: ServerAuditEvent): void;
  /** A Keycloak event landed: project it now rather than at the next tick. */
  projectSoon(): void;
  /** When the audit shipper last had a batch confirmed in S3 (undefined: none since the server started). */
  auditLastShippedAtMs(): number | undefined;
  close(): Promise<void>;
  /**
   * After close() and the last change (the access recorder flushed): marks durably the tenants
   * whose stores still hold work the control plane has not taken (control-pending.ts), so the
   * next start drains them without waiting for their next call.
   */
  markUndrained(): Promise<void>;
}

export async function startControlRuntime(input: {
  readonly config: Config;
  readonly log: Logger;
  readonly withTenant: WithTenant;
  /**
   * Tenants whose stores may hold work for the control plane from before this start (the
   * tenants marked at the last shutdown, control-pending.ts): drained once it connects, not at
   * their next call, and their marks removed once drained. Optional.
   */
  readonly tenantsAtStart?: () => Promise<readonly string[]>;
  /** Server-level denials lost (neither staged nor spooled; each count also logged): for the operator's metrics. */
  readonly onDenialsLost?: (count: number) => void;
}): Promise<ControlRuntime> {
  const { config, log, withTenant } = input;
  let control: ControlPlane | undefined;
  let bucket: AuditBucket | undefined;
  let shipper: AuditShipperLoop | undefined;
  let closed = false;
  let worker: ControlWorker | undefined;
  /** Tenants that changed before Postgres was reachable: nudged once it is. */
  const changedBeforeConnect = new Set<string>();
  /** Tenants whose work has not (yet) run to success: marked at shutdown. Bounded like changedBeforeConnect. */
  const undrained = new Set<string>();
  /**
   * Tenants whose control-pending mark is on disk (or being written): given at start, or marked
   * at the first change of a working period (and when a drain failed), so the work a crash leaves
   * behind is drained at the next start too. One mark write per tenant per working period, never
   * per commit; removed once a successful drain is followed by pendingMarkQuietMs without a change.
   */
  const marked = new Set<string>();
  /** Per tenant, its last mark write or removal: the next one follows it (a removal must not pass a write). */
  const markWrites = new Map<string, Promise<void>>();
  const writeMarkInTurn = (tenant: string, write: () => Promise<unknown>, failure: string): Promise<void> => {
    const next = (markWrites.get(tenant) ?? Promise.resolve()).then(write).then(
      () => undefined,
      (error: unknown) => log.warn({ tenant, err: errorText(error) }, failure),
    );
    markWrites.set(tenant, next);
    void next.finally(() => {
      if (markWrites.get(tenant) === next) markWrites.delete(tenant);
    });
    return next;
  };
  const noteUndrained = (tenant: string): void => {
    if (undrained.size < dirtyTenantsMax) undrained.add(tenant);
    else if (!undrained.has(tenant)) log.warn({ tenant, tenantsMax: dirtyTenantsMax }, 'too many tenants with control-plane work waiting: this one is not marked at shutdown, it drains at its next call');
  };
  /** Per marked, drained tenant: the removal of its mark, once it has been quiet for pendingMarkQuietMs. */
  const markRemovals = new Map<string, NodeJS.Timeout>();
  /** Marks the tenant (once per working period); resolves once the mark's write (or the one in turn) has settled. */
  const markPending = (tenant: string): Promise<void> => {
    clearTimeout(markRemovals.get(tenant));
    markRemovals.delete(tenant);
    if (marked.has(tenant)) return markWrites.get(tenant) ?? Promise.resolve();
    if (marked.size >= dirtyTenantsMax) {
      log.warn({ tenant, tenantsMax: dirtyTenantsMax }, 'too many tenants marked with control-plane work waiting: this one is marked only at a clean shutdown');
      return Promise.resolve();
    }
    marked.add(tenant);
    return writeMarkInTurn(tenant, () => markControlPending(config.dataDir, tenant), 'control-pending mark not written: a clean shutdown writes it; after a crash this tenant drains at its next call');
  };
  const tenantDrained = (tenant: string): void => {
    undrained.delete(tenant);
    if (!marked.has(tenant)) return;
    clearTimeout(markRemovals.get(tenant));
    const removal = setTimeout(() => {
      markRemovals.delete(tenant);
      if (closed || undrained.has(tenant) || !marked.delete(tenant)) return;
      writeMarkInTurn(tenant, () => clearControlPending(config.dataDir, tenant), 'control-pending mark not removed: the next start drains this tenant again (a no-op)');
    }, pendingMarkQuietMs);
    removal.unref();
    markRemovals.set(tenant, removal);
  };
  const denials = await startServerDenials({
    dataDir: config.dataDir, log, nudge: () => worker?.nudgeGlobal(), ...(input.onDenialsLost !== undefined && { onLost: input.onDenialsLost }),
  });
  let projectorTimer: NodeJS.Timeout | undefined;
  let retryDelayMs = retryDelayMsMin;
  /** Rows staged since the shipper was last woken for them. */
  let stagedSinceNudge = 0;

  let connectProblem: string | undefined;
  const connect = async (): Promise<void> => {
    while (!closed && !control) {
      try {
        const opened = await openControlPlane({
          ...(config.database?.url !== undefined && { databaseUrl: config.database.url }),
          ...(config.database?.directUrl !== undefined && { databaseDirectUrl: config.database.directUrl }),
          dataDir: config.dataDir,
        });
        if (closed) {
          // Closed while connecting: close it at once (an embedded database must shut down cleanly).
          await opened.close();
          return;
        }
        control = opened;
        connectProblem = undefined;
        log.info({ backend: control.backend, migrated: control.migrated }, 'control plane ready');
      } catch (error) {
        // Postgres answered and refused (no such database or role, read-only, migrated by a newer
        // server): an operator must act. Else it is away and may come back by itself.
        const hint = databaseRefusalHint(error) ?? (error instanceof MemoryError && !isDatabaseError(error) ? error.hint ?? '' : undefined);
        connectProblem = hint ? `${errorText(error)} (${hint})` : errorText(error);
        if (hint === undefined) {
          log.warn({ err: errorText(error), retryInMs: retryDelayMs }, 'control plane unreachable; tenant writes go on, drains wait');
        } else {
          log.error({ err: errorText(error), hint, retryInMs: retryDelayMs }, 'control plane refused; tenant writes go on, drains wait');
        }
        await sleep(retryDelayMs);
        retryDelayMs = Math.min(retryDelayMs * 2, retryDelayMsMax);
      }
    }
    retryDelayMs = retryDelayMsMin;
  };

  if (config.s3) {
    bucket = openAuditBucket({
      endpoint: config.s3.endpoint, region: config.s3.region, bucket: config.s3.bucket,
      accessKeyId: config.s3.accessKeyId, secretAccessKey: config.s3.secretAccessKey,
    });
  } else {
    log.warn('S3 is not configured (S3_ENDPOINT unset): audit batches stay staged in Postgres; `audit ship` will refuse');
  }

  // The drains themselves (single-flight per tenant, retried until they succeed) are the
  // control worker's; this runtime only connects, lends tenant stores and keeps the clocks.
  const accessFor = (tenant: string): TenantAccess => (work) => withTenant(tenant, (memory) => work(memory.store));
  const connecting = connect().then(async () => {
    if (closed || !control) return;
    const connected = control;
    worker = startControlWorker(control, {
      applyKeycloakEvent: (tenant, event, landingId) => withTenant(tenant, async (memory) => {
        await memory.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'keycloak'));
      }),
      alsoGlobal: () => denials.stage(connected),
      retryMs: workRetryMs,
      onTenantDrained: tenantDrained,
      onTenantFailed: markPending,
      // A store refused until an operator acts (vanished, damaged) is not retried every second
      // (the start drain gives it only once); its mark stays, so a start after the restore drains it.
      givenUp: refusedUntilOperatorActs,
      onTenantGivenUp: (tenant, error) => log.error(
        { tenant, err: errorText(error), hint: (error as MemoryError).hint },
        'control-plane work of a tenant given up: its store is refused until an operator acts; it stays marked and drains at the start after that',
      ),
      // A full batch staged ships now, not at the next tick: the staged backlog stays about one batch.
      onStaged: (_tenant, events) => {
        stagedSinceNudge += events;
        if (stagedSinceNudge < auditBatchEventsDefault) return;
        stagedSinceNudge = 0;
        shipper?.nudge();
      },
      onError: (job, error) => log.warn({ job, err: errorText(error), retryInMs: workRetryMs }, 'control-plane work failed; will retry'),
      onEventRefused: (landingId, tenant, error) => log.error(
        { landingId, tenant, err: errorText(error) },
        'Keycloak event refused for good (by its tenant, or past a bound of the control plane): marked projected without applying it (reason in kc_event_landing.projection_error)',
      ),
      // A test's partial config may carry no retention: the default, never NaN.
      landingRetentionMs: (config.kcLandingRetentionDays ?? kcLandingRetentionDaysDefault) * dayMs,
      onLandingsPruned: (prune) => log.info({ deleted: prune.deleted, more: prune.more, retentionDays: config.kcLandingRetentionDays }, 'Keycloak landings past their retention deleted'),
      onOrganizationsPruned: (prune) => log.info(
        { deleted: prune.deleted, more: prune.more, retentionDays: config.kcLandingRetentionDays },
        'Keycloak organizations deleted longer ago than the landing retention forgotten (kc_organizations)',
      ),
      onUserHistoryCut: (user, tenant, replayed) => log.warn(
        { user, tenant, replayed, limit: 'userHistoryReplayedMax' },
        'a Keycloak user became known in a tenant: only their newest events reaching all their tenants were applied there; what older ones set and no newer one set again is missing there',
      ),
    });
    for (const tenant of changedBeforeConnect) worker.nudgeTenant(tenant, accessFor(tenant));
    changedBeforeConnect.clear();
    worker.nudgeGlobal();
    if (input.tenantsAtStart) void drainTenantsAtStart(worker, input.tenantsAtStart);
    // Landed events also arrive without a webhook nudge (another node landed them).
    projectorTimer = setInterval(() => worker?.nudgeGlobal(), projectorIntervalMs);
    projectorTimer.unref();
    if (bucket) {
      // Checked here to say at once what is wrong; the shipper starts regardless and checks on every
      // pass, so a gateway down at start, or a bucket fixed later, is shipped to without a restart.
      await assertObjectLockEnabled(bucket).catch((error: unknown) =>
        log.error({ err: errorText(error) }, 'audit bucket refused or unreachable: audit batches stay staged until it is usable (checked on every shipping pass)'));
      shipper = startAuditShipper(control, bucket, {
        intervalMs: shipperIntervalMs,
        retentionDays: config.auditRetentionDays,
        onError: (error) => log.warn({ err: errorText(error) }, 'audit shipping failed; will retry'),
        onTenantError: (failure, retryInMs) =>
          log.error({ tenant: failure.tenant, code: failure.code, err: failure.message, hint: failure.hint, retryInMs }, 'audit shipping of a tenant failed; other tenants ship on'),
      });
    }
  });

  const drainTenantsAtStart = async (work: ControlWorker, list: () => Promise<readonly string[]>): Promise<void> => {
    try {
      const tenants = await list();
      if (tenants.length > startupDrainTenantsMax) {
        log.warn({ tenants: tenants.length, drainedMax: startupDrainTenantsMax }, 'too many tenants to drain at start: the rest drain at their next call');
      }
      const drained = tenants.slice(0, startupDrainTenantsMax);
      for (const tenant of drained) marked.add(tenant);
      await drainTenantsInTurn(drained, (tenant) => {
        work.nudgeTenant(tenant, accessFor(tenant));
        return work.whenTenantIdle(tenant);
      }, () => closed);
      if (!closed) log.info({ tenants: drained.length }, 'tenants drained at start');
    } catch (error) {
      log.error({ err: errorText(error) }, 'tenants could not be listed for the drain at start: they drain at their next call');
    }
  };

  return {
    get control() {
      return control;
    },
    get connectProblem() {
      return connectProblem;
    },
    s3Configured: bucket !== undefined,
    auditBucket: bucket,
    tenantChanging: (tenant) => markPending(tenant),
    tenantChanged(tenant) {
      noteUndrained(tenant);
      // Marked now if it was not before the commit (a change not announced by tenantChanging), so a crash before the drain does not strand the work.
      void markPending(tenant);
      if (worker) {
        worker.nudgeTenant(tenant, accessFor(tenant));
        return;
      }
      // Deferred until Postgres answers.
      if (changedBeforeConnect.size < dirtyTenantsMax) changedBeforeConnect.add(tenant);
    },
    auditDenial: (event) => denials.add(event),
    projectSoon: () => worker?.nudgeGlobal(),
    auditLastShippedAtMs: () => shipper?.lastShippedAtMs(),
    async close() {
      closed = true;
      if (projectorTimer) clearInterval(projectorTimer);
      for (const removal of markRemovals.values()) clearTimeout(removal);
      // A connect in progress (an embedded database can take seconds to start) gets a bounded
      // wait: shutdown has its own bound, and nothing acknowledged depends on the control plane.
      const waited = await Promise.race([
        connecting.then(() => true, () => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), closeConnectWaitMs).unref()),
      ]);
      if (!waited) log.warn({ waitMs: closeConnectWaitMs }, 'control plane still starting at shutdown; leaving it');
      await worker?.stop();
      // Denials still queued go to the live spool, staged after the next start.
      await denials.close();
      await shipper?.stop();
      await control?.close();
    },
    async markUndrained() {
      await Promise.all(markWrites.values());
      // Also the tenants marked already: a mark whose write failed is tried again (one that exists costs a stat).
      for (const tenant of undrained) {
        await markControlPending(config.dataDir, tenant).catch((error: unknown) =>
          log.error({ tenant, err: errorText(error) }, 'control-pending mark not written: this tenant\'s waiting work drains at its next call'));
      }
      if (undrained.size > 0) log.warn({ tenants: undrained.size }, 'tenants with control-plane work waiting at shutdown: marked, drained after the next start');
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
