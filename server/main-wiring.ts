/**
 * `serve` wired to the real memory module: the tools, the resource catalog and
 * `openTenantMemory` from tools/index.ts, identity from server/auth, stores from the tenant
 * registry. Local mode (no issuer): one tenant `local` under `${dataDir}/tenants/local`.
 * Token mode: tokens verified per request (HTTP) or once from IOBOXX_TOKEN (stdio).
 */
import { MemoryError } from '../storage/errors.js';
import { sumRowBytes } from '../storage/row-arena.js';
import type { RunHistoryReader, TenantMemory } from '../tools/memory.js';
import { memoryCatalog, memoryTools, openTenantMemory, type TenantMemoryOptions } from '../tools/index.js';
import { runOutboxTable } from '../tools/run-outbox.js';
import { authenticateRequest } from './auth/http-auth.js';
import { serveProtectedResourceMetadata, type ProtectedResourceOptions } from './auth/protected-resource-metadata.js';
import { createAuthenticator } from './auth/authenticator.js';
import { authenticateEnvToken } from './auth/env-token.js';
import { localPrincipal } from './auth/local-principal.js';
import type { Principal } from './auth/principal.js';
import type { Config } from './config.js';
import { startHttpServer, type HttpServing } from './http/http-server.js';
import { fixedPrincipal, isRefusal, type Authenticate, type HttpRefusal, type MemoryFor } from './http/seams.js';
import type { Logger } from './log.js';
import type { LeasedMemory } from './mcp/memory-source.js';
import type { McpSurface } from './mcp/surface.js';
import { createAccessRecorder, type AccessRecorder } from './audit/access-recorder.js';
import { controlPendingToDrain, markControlPending } from './control/control-pending.js';
import { startControlRuntime, type ControlRuntime, type WithTenant } from './control/control-runtime.js';
import { keycloakWebhookPath, keycloakWebhookRouter } from './hooks/keycloak-webhook.js';
import { attachWebSocket, type WebSocketServing } from './ws/attach-websocket.js';
import { memoryExposedTables } from './ws/exposed-tables.js';
import { dataDirProbe, healthRouter, runProbes, s3Probe, type ReadinessProbe } from './ops/health.js';
import { InFlightCalls } from './ops/in-flight.js';
import { DegradedTenants } from './ops/degraded-tenants.js';
import { statfsFreeBytes } from '../storage/io/free-bytes.js';
import { storeOpenFailureCode } from './tenants/open-refusal.js';
import { TenantLoadGuard } from './ops/load-protection.js';
import { authenticateOncePerRequest, callAdmission } from './ops/request-admission.js';
import { OpsMetrics } from './ops/metrics.js';
import { observeWebSocket } from './ws/ws-observer.js';
import { metricsRouter } from './ops/metrics-route.js';
import { serveMemoryStdio } from './stdio.js';
import { TenantRegistry, type TenantRegistryEvent } from './tenants/registry.js';
import { OpenProgress } from './tenants/open-progress.js';
import { SingleTenantMemory } from './tenants/single-tenant-memory.js';
import { storesMemoryBytesMaxOfMachine } from './tenants/stores-memory-budget.js';
import { TenantCommits } from './tenants/tenant-commits.js';

/** The memory module as the MCP layer serves it; every call and read goes to the access log. */
export function memorySurface(log: Logger, recorder?: AccessRecorder, openProgress?: OpenProgress): McpSurface {
  return {
    tools: memoryTools,
    catalog: memoryCatalog,
    log,
    ...(openProgress !== undefined && { openProgress }),
    onToolCall: (e) => {
      // Checked first: the line's fields would be gathered for every call at any level.
      if (log.isLevelEnabled('debug')) {
        log.debug({ tenant: e.principal.caller.tenant, subject: e.principal.caller.subject, tool: e.tool, outcome: e.outcome, offset: e.offset, durationMs: e.durationMs }, 'tool call');
      }
      recorder?.onToolCall(e);
    },
    onResourceRequest: (e) => recorder?.onResourceRequest(e),
    onRequest: (e) => recorder?.onRequest(e),
    ...(recorder !== undefined && { beforeWriteCall: (principal: Principal) => recorder.beforeWriteCall(principal) }),
  };
}

function registryWithTenant(registry: TenantRegistry<TenantMemory>): WithTenant {
  return async (tenant, fn) => {
    const lease = await registry.acquire(tenant);
    try {
      return await fn(lease.store);
    } finally {
      lease.release();
    }
  };
}

/** Why there is no control plane to ask: one still connecting, or one this process never runs. */
const controlPlaneNotYet = () => new MemoryError('unavailable', 'the control plane is not connected yet', 'retry shortly');
const controlPlaneNotInStdio = () => new MemoryError(
  'unavailable',
  'run history lives in the control plane, which a stdio server with the embedded database does not run (retrying here cannot help)',
  'ask a `serve --http` server on this data directory, or start this one with DATABASE_URL set to a Postgres',
);

/**
 * Finished runs waiting in a tenant's run outbox at which a stdio server with the embedded
 * database starts that database to drain them (1 % of runOutboxRowsMax). It is not started
 * below this, as it costs seconds of CPU at every desktop launch; left to `serve --http` alone,
 * a desktop user who never runs it reached runOutboxRowsMax and could end no session.
 */
export const stdioOutboxDrainRowsMin = 1_000;
/** How often (at most) a stdio server looks at the outbox's size, on a request. */
const stdioOutboxCheckMsMin = 10_000;

/** The tenant's run history, bound to that tenant: the tools cannot name another. */
function runHistoryOf(tenant: string, control: () => ControlRuntime | undefined, whenAbsent = controlPlaneNotYet): RunHistoryReader {
  return {
    async aggregates(fromMs, toMs) {
      const plane = control()?.control;
      if (!plane) throw whenAbsent();
      return plane.runHistoryAggregates(tenant, fromMs, toMs);
    },
  };
}

/** What the configuration sets on every tenant store, in both modes (HTTP and stdio). */
function tenantStoreOptions(config: Config): Pick<TenantMemoryOptions, 'snapshotEveryTx' | 'snapshotEveryMs' | 'liveRowBytesMax'> {
  return { snapshotEveryTx: config.snapshotEveryTx, snapshotEveryMs: config.snapshotEveryMs, liveRowBytesMax: config.tenantRowBytesMax };
}

/** A store's failures (a refused or failed write or fdatasync, a periodic or close-time snapshot) reach the operator's log, and the metrics when served. */
function backgroundErrorReport(log: Logger, tenant: string, metrics?: OpsMetrics): (error: unknown) => void {
  return (error) => {
    log.error({ tenant, err: (error as Error).message }, 'tenant store failure (a write, an fdatasync or a snapshot)');
    metrics?.storeError(error);
  };
}

/**
 * What an open put right that the operator should know of: a torn tail it cut (a crash before the
 * tail's fdatasync; its bytes kept aside, which no one would otherwise look at), a history.json it
 * put back from the file that recorded it (history-evidence.ts).
 */
function logOpenRecoveries(log: Logger, tenant: string, store: TenantMemory['store']): void {
  const torn = store.report.torn;
  if (torn !== undefined) {
    log.warn({ tenant, dir: store.dir, file: torn.file, position: torn.position, bytes: torn.bytes, reason: torn.reason, keptAt: torn.keptAt },
      'tenant store log ended in a torn write (a crash before it was synced, never acknowledged): cut, its bytes kept aside');
  }
  const from = store.report.historyRecoveredFrom;
  if (from !== undefined) {
    log.warn({ tenant, dir: store.dir, historyId: store.history.id, recoveredFrom: from },
      'tenant store history.json was missing: put back from the history its checkpoint or snapshot records (find out what removed it)');
  }
}

/** A registry's opens, closes and failures reach the operator's log. */
function logRegistryEvent(log: Logger, event: TenantRegistryEvent): void {
  const failed = 'error' in event;
  log[failed ? 'error' : 'info']({ tenant: event.tenant, ...('why' in event && { why: event.why }), ...(failed && { err: event.error }) }, `tenant store ${event.kind}`);
}

/** The HTTP process's registry: each store it opens feeds `commits` before it serves any request. */
function tenantRegistry(
  config: Config, log: Logger, control: () => ControlRuntime | undefined, metrics: OpsMetrics, commits: TenantCommits,
  onEvent: (event: TenantRegistryEvent) => void,
  /** A store failed (it refuses writes until reopened): what holds it must let go, or it is never reopened. */
  onStoreFailed: (tenant: string) => void,
  openProgress: OpenProgress,
): TenantRegistry<TenantMemory> {
  return new TenantRegistry<TenantMemory>({
    dataDir: config.dataDir,
    open: async (tenant, dir) => {
      const report = backgroundErrorReport(log, tenant, metrics);
      let opened: TenantMemory | undefined;
      const memory = await openTenantMemory(dir, tenant, {
        ...tenantStoreOptions(config),
        runHistory: runHistoryOf(tenant, control),
        onBatch: metrics.onBatch,
        onProgress: openProgress.reporter(tenant),
        onBackgroundError: (error) => {
          report(error);
          if (opened?.store.failed) onStoreFailed(tenant);
        },
      });
      opened = memory;
      logOpenRecoveries(log, tenant, memory.store);
      commits.attach(tenant, memory.store);
      return memory;
    },
    openTenantsMax: config.maxOpenTenants,
    idleCloseMs: config.tenantIdleCloseMs,
    slotWaitMs: config.tenantSlotWaitMs,
    storesMemoryBytesMax: config.storesMemoryBytesMax ?? storesMemoryBytesMaxOfMachine(),
    bytesOf: (memory) => memory.store.memoryBytesEstimate(),
    failed: (memory) => memory.store.failureKind,
    observe: (event) => {
      logRegistryEvent(log, event);
      if (event.kind === 'open_failed') metrics.storeOpenFailure(storeOpenFailureCode(event.error));
      if (event.kind === 'closing' && event.why === 'failed') metrics.failedStoreReopen();
      // The call is refused busy (429) for want of a slot or of room in the memory budget.
      if (event.kind === 'slot_wait_timed_out') metrics.busyRejection('store');
      onEvent(event);
    },
  });
}

function registryMemoryFor(registry: TenantRegistry<TenantMemory>): MemoryFor {
  return async (principal) => {
    const lease = await registry.acquire(principal.caller.tenant);
    return { memory: lease.store, release: () => lease.release() };
  };
}

/** Serves one stdio connection; resolves when the client has gone and the store is closed. */
/** How a stdio process's connection ended. */
export interface StdioProcessEnd {
  /** The shutdown bound passed with calls still running (they were answered with an error). */
  readonly shutdownBoundPassed: boolean;
}

export async function serveStdioProcess(config: Config, log: Logger): Promise<StdioProcessEnd> {
  let principal: Principal;
  let revalidate: (() => Promise<void>) | undefined;
  if (config.auth === undefined) {
    principal = localPrincipal();
  } else {
    const tokenPrincipal = await authenticateEnvToken(config.token, createAuthenticator(config.auth), config.tenantSelection);
    principal = tokenPrincipal;
    // The token is fixed for the process: once it expires, every request is refused.
    revalidate = async () => {
      if (Date.now() >= tokenPrincipal.tokenExpiresAtMs) {
        throw new MemoryError('unauthenticated', 'IOBOXX_TOKEN has expired', 'restart the server with a fresh access token');
      }
    };
  }
  const tenant = principal.caller.tenant;
  // Opened on first use (the 2.x client's discover probe, a throwaway process, never opens it);
  // a failed store is reopened after its backoff, as on HTTP.
  // A first call replays the tenant's log: one that asked for progress hears it (progress-notifications.ts).
  const openProgress = new OpenProgress();
  const tenantMemory = new SingleTenantMemory({
    dataDir: config.dataDir,
    tenant,
    open: async (dir) => {
      const memory = await openTenantMemory(dir, tenant, {
        ...tenantStoreOptions(config),
        runHistory: runHistoryOf(tenant, () => control, config.database?.url === undefined ? controlPlaneNotInStdio : controlPlaneNotYet),
        onBackgroundError: backgroundErrorReport(log, tenant),
        onProgress: openProgress.reporter(tenant),
      });
      log.info({ tenant, dir, lastOffset: memory.store.lastOffset }, 'tenant store open');
      logOpenRecoveries(log, tenant, memory.store);
      return memory;
    },
    observe: (event) => logRegistryEvent(log, event),
  });
  // The control plane (embedded PGlite by default) starts with the first real request too.
  let control: ControlRuntime | undefined;
  const withTenant = tenantMemory.withTenant;
  const recorder = createAccessRecorder({ withTenant, control: () => control, log });
  // With a real Postgres the control plane starts on the first request. The embedded one
  // (PGlite) is left to `serve --http`: starting a WASM Postgres costs seconds of CPU at every
  // desktop-client launch, and the outbox and access log wait safely in the store meanwhile.
  let controlChecked = false;
  let outboxCheckedAtMs = Number.NEGATIVE_INFINITY;
  let undrainedMarked: Promise<void> | undefined;
  const startControl = async () => {
    control = await startControlRuntime({ config, log, withTenant, tenantsAtStart: async () => [tenant] });
  };
  const memoryAndControl: LeasedMemory = {
    lease: async () => {
      const lease = await tenantMemory.memory.lease();
      try {
        if (!controlChecked) {
          controlChecked = true;
          if (config.database?.url !== undefined) await startControl();
          else {
            log.info('stdio with the embedded database: run history and audit staging drain after `serve --http` starts on this data dir, or here once the run outbox fills');
            // Nothing drains this store here: marked now, not at shutdown, so a crash leaves the mark too.
            undrainedMarked = markControlPending(config.dataDir, tenant).catch((error: unknown) =>
              log.error({ err: error instanceof Error ? error.message : String(error) }, 'control-pending mark not written: the access rows drain at this tenant\'s next HTTP call'));
          }
        }
        if (control === undefined && Date.now() - outboxCheckedAtMs >= stdioOutboxCheckMsMin) {
          outboxCheckedAtMs = Date.now();
          const finishedRuns = await lease.memory.store.read((view) => view.table(runOutboxTable.name).size);
          if (finishedRuns >= stdioOutboxDrainRowsMin) {
            log.info({ tenant, finishedRuns, limit: 'stdioOutboxDrainRowsMin', atLeast: stdioOutboxDrainRowsMin },
              'stdio with the embedded database: finished runs wait in the run outbox; starting the embedded database to drain them');
            await startControl();
          }
        }
      } catch (error) {
        lease.release();
        throw error;
      }
      return lease;
    },
    onCommit: tenantMemory.memory.onCommit,
  };
  log.info({ mode: config.mode, tenant, dataDir: config.dataDir }, 'serving MCP over stdio');
  const serving = serveMemoryStdio({
    surface: memorySurface(log, recorder, openProgress),
    principal,
    memory: memoryAndControl,
    ...(revalidate !== undefined && { revalidate }),
  });
  // The end of stdin (the client closing it, or us on SIGTERM/SIGINT) stops the reading; the
  // transport then answers the calls already read before it closes, so their access rows are
  // queued before the flush below. That wait is bounded like the HTTP shutdown: past it the
  // connection closes and the calls still running are answered with an error.
  let shutdownTimer: NodeJS.Timeout | undefined;
  let shutdownBoundPassed = false;
  const boundShutdown = () => {
    shutdownTimer ??= setTimeout(() => {
      shutdownBoundPassed = true;
      log.warn({ shutdownMs: config.shutdownMs }, 'shutdown bound passed; answering the calls still running with an error');
      void serving.close();
    }, config.shutdownMs);
  };
  const stop = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'stopping: no longer reading stdin');
    boundShutdown();
    process.stdin.destroy(); // serveMemoryStdio reads process.stdin: its end is the transport's cue
  };
  process.stdin.once('end', boundShutdown);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await serving.closed;
  clearTimeout(shutdownTimer);
  process.stdin.off('end', boundShutdown);
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  log.info('stdio calls answered; closing stores');
  // The access rows of the last answered calls wait up to accessAppendDelayMs: append them first.
  await recorder.close();
  await control?.close();
  await control?.markUndrained();
  await undrainedMarked;
  await tenantMemory.close();
  log.info('stdio connection over; store closed');
  return { shutdownBoundPassed };
}

export interface HttpProcess {
  readonly serving: HttpServing;
  readonly control: ControlRuntime;
  readonly metrics: OpsMetrics;
  /** Refuse new calls (shutdown step 1); `drained` resolves when admitted ones are done. */
  stopAccepting(): void;
  drained(): Promise<void>;
  close(): Promise<void>;
}

export async function serveHttpProcess(config: Config, log: Logger): Promise<HttpProcess> {
  let controlRuntime: ControlRuntime | undefined;
  const metrics = new OpsMetrics({
    probes: {
      openTenants: () => registry.stats().open,
      storesMemoryBytes: () => registry.stats().storesMemoryBytes,
      storesMemoryBytesMax: () => registry.storesMemoryBytesMax,
      rowBytes: () => sumRowBytes(registry.openStores().map((memory) => memory.store.rowBytes())),
      auditBacklog: async () => {
        const plane = controlRuntime?.control;
        if (!plane) throw new Error('control plane not connected');
        return (await plane.auditBacklog()).reduce((sum, b) => sum + b.staged, 0);
      },
      auditLastShippedAtMs: () => controlRuntime?.auditLastShippedAtMs(),
      controlPlaneUp: async () => (await runProbes([postgresReadiness]))[0]!.ok,
      dataDirFreeBytes: () => statfsFreeBytes(config.dataDir),
      degradedTenants: () => degraded.counts(),
      accessRowsWaiting: () => recorder.rowsWaiting(),
      // Before this probe the gauge was declared and documented but read 0 whatever waited.
      subscriptionLagMax: () => liveForRegistry?.subscriptionLagMax() ?? 0,
    },
  });
  const degraded = new DegradedTenants(() => registry.openStores().filter((memory) => memory.store.failed).map((memory) => memory.tenant));
  const postgresReadiness: ReadinessProbe = {
    name: 'postgres',
    check: async () => {
      const plane = controlRuntime?.control;
      if (!plane) {
        const problem = controlRuntime?.connectProblem;
        throw new Error(`control plane not connected${problem === undefined ? '' : `: ${problem}`}`);
      }
      await plane.auditBacklog();
    },
  };
  // An evicted store is held open by the leases of its tenant's WebSocket subscribers: they let go
  // (WebSocketServing.releaseStore), and so they do when the store fails, else it is never reopened
  // while one stays connected. 2025-era sessions hold no lease between calls and
  // subscriptions/listen streams none at all: they hear commits through `commits`.
  let liveForRegistry: WebSocketServing | undefined;
  const commits = new TenantCommits();
  const openProgress = new OpenProgress();
  const registry = tenantRegistry(config, log, () => controlRuntime, metrics, commits, (event) => {
    degraded.observe(event);
    if (event.kind === 'closing' && event.why === 'evicted') {
      liveForRegistry?.releaseStore(event.tenant, 'evicted');
    }
  }, (tenant) => liveForRegistry?.releaseStore(tenant, 'failed'), openProgress);
  const guard = new TenantLoadGuard(config.loadLimits, {
    runningMax: config.runningCallsMax, onBusy: (_tenant, limit) => metrics.busyRejection(limit),
  });
  const calls = new InFlightCalls();
  let listeningOrigin: string | undefined;
  let authenticate: Authenticate;
  let resource: ProtectedResourceOptions | undefined;
  if (config.auth === undefined) {
    authenticate = fixedPrincipal(localPrincipal());
  } else {
    const { oidc } = config.auth;
    const authenticator = createAuthenticator({
      ...config.auth,
      // Callers are answered 503; without this line the operator would see nothing of why.
      oidc: { ...oidc, onIssuerUnavailable: (problem) => log.warn({ issuer: oidc.issuer, problem }, 'OIDC issuer unavailable: tokens are verified with the last keys that loaded, if any, else answered 503') },
    });
    const protectedResource: ProtectedResourceOptions = {
      // Read per request: with port 0 the real port is known only once the server listens.
      get publicBaseUrl() {
        return config.http.publicUrl ?? listeningOrigin ?? `http://${config.http.host}:${config.http.port}`;
      },
      publicBaseUrlFromRequest: config.http.publicUrl === undefined,
      authorizationServers: [config.auth.oidc.issuer],
      endpointNames: ['mcp', 'sse', 'messages', 'ws'],
    };
    resource = protectedResource;
    authenticate = async (req) => {
      const result = await authenticateRequest(req, { authenticator, resource: protectedResource });
      return result.ok ? result.principal : result.failure;
    };
  }
  const withTenant = registryWithTenant(registry);
  // Only the tenants marked at the last shutdown drain at start (a few at a time): opening every
  // store of the data dir would compete with calls for the registry's slots.
  const control = await startControlRuntime({
    config, log, withTenant, tenantsAtStart: () => controlPendingToDrain(config.dataDir), onDenialsLost: (count) => metrics.serverDenialsLost(count),
  });
  controlRuntime = control;
  const recorder = createAccessRecorder({ withTenant, control: () => control, log, onRowsLost: (rows) => metrics.accessLogRowsLost(rows) });
  const authenticateAudited: Authenticate = authenticateOncePerRequest(async (req) => {
    const result = await authenticate(req);
    if (isRefusal(result)) {
      metrics.authFailure((result as { reason?: string }).reason ?? 'other');
      const path = (req.url ?? '/').split('?')[0]!;
      recorder.onRefusal({ path, status: result.status, reason: refusalReason(result) });
    }
    return result;
  });
  // The HTTP server admits each request past the shutdown gate (`calls`) before it takes a
  // lease; a session's call takes its lease deep inside its handling, so HTTP leases do not pass
  // the gate again (an admitted call always completes). A WebSocket connection is not a call: its
  // lease passes the gate. The tenant load guard admits each MCP call (mounted below, before its
  // body is read): a socket holding a lease is not a call and must not hold a call's slot.
  const memoryFor = registryMemoryFor(registry);
  const socketMemoryFor: MemoryFor = (principal) => calls.run(() => memoryFor(principal));
  const serving = await startHttpServer({
    surface: memorySurface(log, recorder, openProgress),
    authenticate: authenticateAudited,
    onRefusal: (r) => recorder.onRefusal(r),
    calls,
    // An event stream cut for a client that stopped reading (the route logs it): counted as a /ws cut-off is.
    onStreamCut: () => metrics.subscriptionDrop('slow_consumer'),
    // Each MCP call (POST) is admitted under its tenant's limits, fairly between tenants, once
    // authenticated and before its body is read; past them 429 + Retry-After.
    admission: callAdmission({ guard }),
    mount: (app) => {
      app.use(healthRouter({
        probes: [
          dataDirProbe(config.dataDir, { freeBytesMin: config.dataDirFreeBytesMin }),
          postgresReadiness,
          ...(control.auditBucket !== undefined ? [s3Probe(control.auditBucket)] : []),
        ],
        draining: () => !calls.accepting,
        degradedTenants: () => degraded.report(),
      }));
      app.use(metricsRouter(metrics));
      const secret = config.kcWebhookSecret;
      if (secret === undefined) return;
      // The router needs a connected control plane; until then the hook answers 503 (Keycloak retries).
      let webhook: ReturnType<typeof keycloakWebhookRouter> | undefined;
      app.use((req, res, next) => {
        if (req.path !== keycloakWebhookPath) return next();
        const plane = control.control;
        if (!plane) {
          res.status(503).set('Retry-After', '5').json({ error: 'unavailable', message: 'control plane not connected yet' });
          return;
        }
        webhook ??= keycloakWebhookRouter({
          secret, control: plane,
          onLanded: () => control.projectSoon(),
          onRejected: (reason, status) => recorder.onRefusal({ path: keycloakWebhookPath, status, reason }),
          onFailed: (error) => log.error({ err: error instanceof Error ? error.message : String(error) }, 'Keycloak event not landed (answered 500)'),
        });
        webhook(req, res, next);
      });
    },
    memoryFor,
    commitsOf: (tenant, listener) => commits.listen(tenant, listener),
    host: config.http.host,
    port: config.http.port,
    allowedOrigins: config.http.allowedOrigins,
    // RFC 9728 metadata is public and fetched cross-origin by browser clients: before the Origin guard.
    ...(resource !== undefined && {
      mountBeforeGuards: (app) =>
        app.use((req, res, next) => {
          if (!serveProtectedResourceMetadata(req, res, resource)) next();
        }),
    }),
  });
  listeningOrigin = new URL(serving.url).origin;
  // Live row subscriptions on /ws: the same authentication and tenant leases as /mcp.
  const live = attachWebSocket(serving.server, {
    authenticate: authenticateAudited, memoryFor: socketMemoryFor, tables: memoryExposedTables(), log, allowedOrigins: config.http.allowedOrigins,
    observe: observeWebSocket(metrics, log),
    onRequest: (e) => recorder.onRequest({ principal: e.principal, method: e.action, target: e.target, outcome: e.outcome }),
    onRefusal: (r) => recorder.onRefusal(r),
  });
  liveForRegistry = live;
  log.info({ mode: config.mode, url: serving.url, dataDir: config.dataDir }, 'serving MCP over HTTP (/mcp, /sse)');
  return {
    serving,
    control,
    metrics,
    stopAccepting: () => calls.close(),
    drained: () => calls.drained(),
    close: async () => {
      // The control plane closes beside the listeners (its connect may still be starting);
      // upgraded sockets are not closed by the HTTP server's close: end them first.
      const controlClosed = control.close();
      await live.close();
      await serving.close();
      // No call is answered any more: the access rows still queued are appended before the stores close.
      await recorder.close();
      await controlClosed;
      await control.markUndrained();
      await registry.close();
    },
  };
}

function refusalReason(refusal: HttpRefusal): string {
  const body = refusal.body as { error?: unknown; error_description?: unknown } | undefined;
  const parts = [body?.error, body?.error_description].filter((x): x is string => typeof x === 'string');
  return parts.join(': ') || `status ${refusal.status}`;
}
