/**
 * The control plane at run time: Postgres (or embedded PGlite) plus the background work that
 * moves data out of tenant stores — access log -> audit staging, run outbox -> run_history,
 * landed Keycloak events -> kc_* projections, staged audit -> S3 Object Lock batches.
 *
 * The commitlog is the first durable hop: none of this sits on a tool call's path, so tenant
 * writes go on while Postgres or S3 are down; the loops retry with backoff and drain later.
 */
import { MemoryError } from '../../storage/errors.js';
import { assertObjectLockEnabled, openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { startAuditShipper, type AuditShipperLoop } from '../../storage/audit/shipper.js';
import { stageAccessLog, stageServerAudit, type ServerAuditEvent } from '../../storage/control/audit-staging.js';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { projectKeycloakEvents } from '../../storage/control/keycloak-projector.js';
import { drainRunOutbox, systemCaller } from '../../storage/control/run-outbox.js';
import type { TenantMemory } from '../../tools/memory.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';

/** How long a tenant's changes wait before its drain runs (coalesces bursts). */
export const drainDelayMs = 200;
export const retryDelayMsMin = 500;
export const retryDelayMsMax = 30_000;
export const projectorIntervalMs = 2_000;
export const shipperIntervalMs = 2_000;
/** Tenants waiting for a drain; past it the oldest waits for the next sweep (its rows stay in its store). */
export const dirtyTenantsMax = 100_000;
/** How long close() waits for a control-plane connect still in progress. */
export const closeConnectWaitMs = 2_000;

export type WithTenant = <T>(tenant: string, fn: (memory: TenantMemory) => Promise<T>) => Promise<T>;

export interface ControlRuntime {
  /** Undefined until Postgres is reachable (retried in the background). */
  readonly control: ControlPlane | undefined;
  readonly s3Configured: boolean;
  /** A tenant committed something: stage its access log and drain its outbox soon. */
  tenantChanged(tenant: string): void;
  /** A server-level denial (no tenant store involved): staged straight to Postgres. */
  auditDenial(event: ServerAuditEvent): void;
  /** A Keycloak event landed: project it now rather than at the next tick. */
  projectSoon(): void;
  /** Run every pending drain once and wait for it (tests, shutdown). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export async function startControlRuntime(input: {
  readonly config: Config;
  readonly log: Logger;
  readonly withTenant: WithTenant;
}): Promise<ControlRuntime> {
  const { config, log, withTenant } = input;
  let control: ControlPlane | undefined;
  let bucket: AuditBucket | undefined;
  let shipper: AuditShipperLoop | undefined;
  let closed = false;
  const dirty = new Set<string>();
  const pendingDenials: ServerAuditEvent[] = [];
  let drainTimer: NodeJS.Timeout | undefined;
  let projectorTimer: NodeJS.Timeout | undefined;
  let retryDelayMs = retryDelayMsMin;
  let running: Promise<void> = Promise.resolve();

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
        log.info({ backend: control.backend, migrated: control.migrated }, 'control plane ready');
      } catch (error) {
        log.warn({ err: errorText(error), retryInMs: retryDelayMs }, 'control plane unreachable; tenant writes go on, drains wait');
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

  const drainOnce = async (): Promise<void> => {
    if (!control) return;
    const c = control;
    while (pendingDenials.length > 0) {
      await stageServerAudit(c, pendingDenials[0]!);
      pendingDenials.shift();
    }
    for (const tenant of [...dirty]) {
      dirty.delete(tenant);
      try {
        await withTenant(tenant, async (memory) => {
          await stageAccessLog(c, tenant, memory.store);
          await drainRunOutbox(c, tenant, memory.store);
        });
      } catch (error) {
        dirty.add(tenant); // try again later: nothing is lost, the rows stay in the store
        throw error;
      }
    }
  };

  const scheduleDrain = (delayMs = drainDelayMs): void => {
    if (closed || drainTimer) return;
    drainTimer = setTimeout(() => {
      drainTimer = undefined;
      running = running.then(async () => {
        try {
          await drainOnce();
          retryDelayMs = retryDelayMsMin;
        } catch (error) {
          log.warn({ err: errorText(error), retryInMs: retryDelayMs }, 'drain failed; will retry');
          scheduleDrain(retryDelayMs);
          retryDelayMs = Math.min(retryDelayMs * 2, retryDelayMsMax);
        }
      });
    }, delayMs);
    drainTimer.unref();
  };

  const project = async (): Promise<void> => {
    if (!control) return;
    const result = await projectKeycloakEvents(control, async (tenant, event, landingId) => {
      await withTenant(tenant, (memory) => memory.store.call('kc_apply_event',
        { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'keycloak')));
    });
    if (result.projected + result.skipped > 0) log.info(result, 'keycloak events projected');
  };

  const projectTick = (): void => {
    if (closed) return;
    running = running.then(() => project().catch((error) => log.warn({ err: errorText(error) }, 'keycloak projection failed; will retry')));
  };

  const connecting = connect().then(async () => {
    if (closed || !control) return;
    scheduleDrain(0);
    projectTick();
    projectorTimer = setInterval(projectTick, projectorIntervalMs);
    projectorTimer.unref();
    if (bucket) {
      try {
        await assertObjectLockEnabled(bucket);
      } catch (error) {
        log.error({ err: errorText(error) }, 'audit bucket refused: audit batches stay staged');
        return;
      }
      shipper = startAuditShipper(control, bucket, {
        intervalMs: shipperIntervalMs,
        retentionDays: config.auditRetentionDays,
        onError: (error) => log.warn({ err: errorText(error) }, 'audit shipping failed; will retry'),
      });
    }
  });

  return {
    get control() {
      return control;
    },
    s3Configured: bucket !== undefined,
    tenantChanged(tenant) {
      if (dirty.size >= dirtyTenantsMax && !dirty.has(tenant)) return;
      dirty.add(tenant);
      scheduleDrain();
    },
    auditDenial(event) {
      if (pendingDenials.length >= dirtyTenantsMax) {
        log.error('server audit backlog full: a denial was not staged');
        return;
      }
      pendingDenials.push(event);
      scheduleDrain();
    },
    projectSoon: projectTick,
    async flush() {
      await running;
      if (!control) throw new MemoryError('unavailable', 'control plane not connected');
      await drainOnce();
      await project();
    },
    async close() {
      closed = true;
      if (drainTimer) clearTimeout(drainTimer);
      if (projectorTimer) clearInterval(projectorTimer);
      // A connect in progress (an embedded database can take seconds to start) gets a bounded
      // wait: shutdown has its own bound, and nothing acknowledged depends on the control plane.
      const waited = await Promise.race([
        connecting.then(() => true, () => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), closeConnectWaitMs).unref()),
      ]);
      if (!waited) log.warn({ waitMs: closeConnectWaitMs }, 'control plane still starting at shutdown; leaving it');
      await running.catch(() => undefined);
      await shipper?.stop();
      await control?.close();
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
