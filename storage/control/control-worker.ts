/**
 * The background work between tenant stores and the control plane, in one place: per tenant,
 * drain the run outbox and stage the access log; globally, project landed Keycloak events
 * and ship audit batches. Each job runs single-flight (a nudge during a run schedules one more
 * run), and a failed run (Postgres or S3 away) is retried after `retryMs` until it succeeds,
 * so the outboxes drain by themselves once the service returns.
 */
import type { StoreApi } from '../store.js';
import type { ControlPlane } from './control-plane.js';
import { projectKeycloakEvents, type ApplyKeycloakEvent } from './keycloak-projector.js';
import { drainRunOutbox } from './run-outbox.js';
import { landingPruneEveryMsDefault, pruneDeletedOrganizations, pruneProjectedLandings, type LandingPrune } from './landing-retention.js';
import { stageAccessLog } from './audit-staging.js';

export const controlRetryMsDefault = 1_000;
/**
 * A job nudged while it ran runs again after at least this long: under a stream of commits a
 * tenant's drain then takes the rows of many calls per run (a few SQL round trips per run, not
 * per call). A run costs about the same whatever it carries: on embedded PGlite ~10 ms of CPU.
 * At 20 ms a sequential caller's server spent more CPU staging its access rows than serving its
 * calls (2.7 against 1.7 ms per HTTP object_get, measured); at 250 ms staging is at most ~4 runs
 * a second per busy tenant, for at most this much more staging latency.
 */
export const rerunGapMsDefault = 250;
/**
 * Tenants with work queued or running at once; past this a nudge is refused (the next commit
 * nudges again). A tenant leaves the count when its drain is done, so this bounds memory, not
 * how many tenants a long-running server may ever drain.
 */
export const controlTenantsMax = 100_000;

/**
 * How a drain reaches a tenant's store: the store itself, or a function that lends it for one
 * run (a server's registry may have closed the store since the nudge and must reopen it).
 */
export type TenantAccess = StoreApi | (<T>(work: (store: StoreApi) => Promise<T>) => Promise<T>);

export interface ControlWorkerOptions {
  readonly applyKeycloakEvent: ApplyKeycloakEvent;
  /** Extra global work run after each projection pass (e.g. staging server-level audit events); optional. */
  readonly alsoGlobal?: () => Promise<unknown>;
  readonly retryMs?: number;
  readonly rerunGapMs?: number;
  /** Bound on tenants with work queued or running at once (tests use a small one); controlTenantsMax unless given. */
  readonly tenantsMax?: number;
  /** Every nudge of `tenant` so far has run to success (its store holds nothing the control plane has not taken). */
  readonly onTenantDrained?: (tenant: string) => void;
  /** A drain of `tenant` failed (retried, or given up): its store still holds work the control plane has not taken. */
  readonly onTenantFailed?: (tenant: string) => void;
  /**
   * A failure no retry mends (a tenant store refused until an operator acts): that tenant's work
   * is given up, not retried every `retryMs`, until its next nudge. Nothing is given up unless given.
   */
  readonly givenUp?: (error: unknown) => boolean;
  /** The work of `tenant` was given up on `error` (see `givenUp`): reported once, instead of onError. */
  readonly onTenantGivenUp?: (tenant: string, error: unknown) => void;
  /** Access-log rows of `tenant` were staged (e.g. to wake the shipper once a batch is full). */
  readonly onStaged?: (tenant: string, events: number) => void;
  readonly onError?: (job: string, error: unknown) => void;
  /** A landed event its tenant refused for good (see `refusedForGood`): marked, not applied. */
  readonly onEventRefused?: (landingId: number, tenant: string, error: unknown) => void;
  /** The earlier events of a user given to a tenant they joined were cut (see userHistoryReplayedMax). */
  readonly onUserHistoryCut?: (user: string, tenant: string, replayed: number) => void;
  /** Landings projected longer ago than this are deleted (landing-retention.ts); none: kept. */
  readonly landingRetentionMs?: number;
  /** A prune runs after a projection pass at most this often; landingPruneEveryMsDefault unless given. */
  readonly landingPruneEveryMs?: number;
  /** A prune deleted landings. */
  readonly onLandingsPruned?: (prune: LandingPrune) => void;
  /** A prune deleted the rows of organizations deleted longer ago than the landing retention (kc_organizations). */
  readonly onOrganizationsPruned?: (prune: LandingPrune) => void;
}

export interface ControlWorker {
  /** The tenant's store has new commits: drain its outbox and stage its access log. */
  nudgeTenant(tenant: string, access: TenantAccess): void;
  /** New Keycloak events landed (or audit is due): run the projector (and ship). */
  nudgeGlobal(): void;
  /** Resolves once the tenant's queued work has run to success. */
  whenTenantIdle(tenant: string): Promise<void>;
  whenGlobalIdle(): Promise<void>;
  stop(): Promise<void>;
}

/** A job that runs one at a time, reruns when nudged during a run, and retries on failure. */
class SingleFlight {
  private running: Promise<void> | undefined;
  private again = false;
  private retry: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];
  /** Ends the wait between two runs early (stop() must not wait out the gap). */
  private endGap: (() => void) | undefined;
  stopped = false;

  constructor(
    private readonly name: string,
    private readonly run: () => Promise<unknown>,
    private readonly retryMs: number,
    private readonly onError: (job: string, error: unknown) => void,
    private readonly rerunGapMs: number,
    /** Its work has all run to success (nothing queued, no retry pending). */
    private readonly onIdle: () => void = () => undefined,
    /** A run failed: true gives its work up (not reported, not retried; its waiters let go, not idle). */
    private readonly onFailed: (error: unknown) => boolean = () => false,
  ) {}

  nudge(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.retry) {
      clearTimeout(this.retry);
      this.retry = undefined;
    }
    this.running = this.loop();
  }

  private async loop(): Promise<void> {
    let failed = false;
    let givenUp = false;
    do {
      this.again = false;
      try {
        await this.run();
      } catch (error) {
        failed = true;
        givenUp = this.onFailed(error);
        if (!givenUp) this.onError(this.name, error);
        break;
      }
      if (this.again && !this.stopped && this.rerunGapMs > 0) await this.gap();
    } while (this.again && !this.stopped);
    this.running = undefined;
    // A failed run is not idle, also when stopping (stop() lets the waiters go): its work is still there.
    if (failed) {
      if (givenUp) for (const w of this.waiters.splice(0)) w();
      else if (!this.stopped) {
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.nudge();
        }, this.retryMs);
      }
      return;
    }
    for (const w of this.waiters.splice(0)) w();
    this.onIdle();
  }

  private gap(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.endGap = undefined;
        resolve();
      }, this.rerunGapMs);
      this.endGap = () => {
        clearTimeout(timer);
        this.endGap = undefined;
        resolve();
      };
    });
  }

  idle(): Promise<void> {
    if (!this.running && !this.retry) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.endGap?.();
    await this.running;
    for (const w of this.waiters.splice(0)) w();
  }
}

export function startControlWorker(control: ControlPlane, options: ControlWorkerOptions): ControlWorker {
  const retryMs = options.retryMs ?? controlRetryMsDefault;
  const rerunGapMs = options.rerunGapMs ?? rerunGapMsDefault;
  const tenantsMax = options.tenantsMax ?? controlTenantsMax;
  const onError = options.onError ?? (() => undefined);
  const tenants = new Map<string, { access: TenantAccess; job: SingleFlight }>();
  const landingPruneEveryMs = options.landingPruneEveryMs ?? landingPruneEveryMsDefault;
  let landingsPrunedAtMs: number | undefined;
  /** After a projection pass that succeeded: what it marked projected may be past the retention. */
  const pruneLandings = async (): Promise<void> => {
    if (options.landingRetentionMs === undefined) return;
    const now = Date.now();
    if (landingsPrunedAtMs !== undefined && now - landingsPrunedAtMs < landingPruneEveryMs) return;
    const prune = await pruneProjectedLandings(control, options.landingRetentionMs);
    const organizations = await pruneDeletedOrganizations(control, options.landingRetentionMs);
    // Only a prune that finished waits for the next interval; one cut short runs at the next pass.
    if (!prune.more && !organizations.more) landingsPrunedAtMs = now;
    if (prune.deleted > 0) options.onLandingsPruned?.(prune);
    if (organizations.deleted > 0) options.onOrganizationsPruned?.(organizations);
  };
  const global = new SingleFlight(
    'keycloak-projector',
    async () => {
      // The extra work runs even when projection fails (a tenant store away): it does not wait on it.
      let projectionFailure: { error: unknown } | undefined;
      await projectKeycloakEvents(control, options.applyKeycloakEvent, {
        ...(options.onEventRefused !== undefined && { onRefused: options.onEventRefused }),
        ...(options.onUserHistoryCut !== undefined && { onUserHistoryCut: options.onUserHistoryCut }),
      }).then(pruneLandings).catch((error: unknown) => {
        projectionFailure = { error };
      });
      await options.alsoGlobal?.();
      if (projectionFailure) throw projectionFailure.error;
    },
    retryMs,
    onError,
    rerunGapMs,
  );
  let stopped = false;

  return {
    nudgeTenant(tenant, access) {
      if (stopped) return;
      let entry = tenants.get(tenant);
      if (entry && entry.access !== access) entry.access = access; // reopened: drain through the open one
      if (!entry) {
        if (tenants.size >= tenantsMax) return;
        const created: { access: TenantAccess; job: SingleFlight } = {
          access,
          job: new SingleFlight(
            `tenant ${tenant}`,
            () => withStore(created.access, async (store) => {
              await drainRunOutbox(control, tenant, store);
              const staged = await stageAccessLog(control, tenant, store);
              if (staged > 0) options.onStaged?.(tenant, staged);
            }),
            retryMs,
            onError,
            rerunGapMs,
            // Drained: forget the tenant, so tenants seen once do not fill the bound for good.
            () => {
              if (tenants.get(tenant) === created) tenants.delete(tenant);
              options.onTenantDrained?.(tenant);
            },
            (error) => {
              options.onTenantFailed?.(tenant);
              if (!options.givenUp?.(error)) return false;
              // Forgotten like a drained tenant: its next nudge starts afresh.
              if (tenants.get(tenant) === created) tenants.delete(tenant);
              options.onTenantGivenUp?.(tenant, error);
              return true;
            },
          ),
        };
        tenants.set(tenant, created);
        entry = created;
      }
      entry.job.nudge();
    },
    nudgeGlobal() {
      if (!stopped) global.nudge();
    },
    whenTenantIdle(tenant) {
      return tenants.get(tenant)?.job.idle() ?? Promise.resolve();
    },
    whenGlobalIdle() {
      return global.idle();
    },
    async stop() {
      stopped = true;
      await Promise.all([global.stop(), ...[...tenants.values()].map((t) => t.job.stop())]);
    },
  };
}

function withStore(access: TenantAccess, work: (store: StoreApi) => Promise<void>): Promise<void> {
  return typeof access === 'function' ? access(work) : work(access);
}
