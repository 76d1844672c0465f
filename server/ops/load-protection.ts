/**
 * Per-tenant load protection, so one tenant flooding the server cannot crowd out the others:
 *  - a token bucket per tenant (`ratePerSecond`, `burst`): past it a call is refused at once;
 *  - a bound on a tenant's calls running at once (`inFlightMax`) with a bounded FIFO queue
 *    behind it (`queuedMax`): past both, a call is refused at once instead of waiting without end;
 *  - a bound on the calls running at once over ALL tenants (`runningMax`), with the freed slots
 *    handed round robin to the tenants that have calls waiting (deficit round robin with a
 *    quantum of one call: calls cost about alike). The server's one event loop is shared: a
 *    call's latency is its own work plus the work interleaved with it, so what the flooder has
 *    admitted must stay small and a quiet tenant's call must be next, not 64th, in line.
 *  - work-conserving: a tenant alone on the server (no other tenant has called for soloQuietMs)
 *    runs past `runningMax`, which protects others and there are none, and past its own
 *    `inFlightMax`, up to `aloneInFlightMax`. Its calls then share group-commit batches instead of
 *    queueing for slots while the disk syncs. A newcomer's first call is admitted at once all the
 *    same, and from then on both bounds hold again: the lone tenant's extra calls finish and are
 *    not replaced.
 * A refusal is a retryable `busy` MemoryError carrying `retryAfterMs` (HTTP: 429 + Retry-After).
 * Admission is O(1) and allocation-free on the fast path; it never awaits anything but a slot.
 */
import os from 'node:os';
import { MemoryError } from '../../storage/errors.js';

export interface LoadLimits {
  /** Calls of one tenant running at once. */
  readonly inFlightMax: number;
  /** ... while it is alone on the server (at least inFlightMax; unless given, twice inFlightMax). */
  readonly aloneInFlightMax: number;
  /** Calls of one tenant waiting for a slot; past it `busy`. */
  readonly queuedMax: number;
  /** Sustained calls per second per tenant (token refill rate). */
  readonly ratePerSecond: number;
  /** Calls a tenant may make at once after being quiet (bucket size). */
  readonly burst: number;
}

/**
 * inFlightMax 16 (was 64): a call over HTTP costs ~0.2 ms of CPU and its fdatasync ~0.4-1 ms, so
 * 16 of one tenant keep its group commit batching; more only lengthen the line others wait in.
 * Measured alone (bench/audit.ts: one tenant, 64 HTTP callers, 2 cores, alternating 60 s runs):
 * 8 running 2,990-3,515 audited calls/s (the server ~30 % idle, 5 transactions per fdatasync);
 * 16 running 3,662-5,425; 64 running 3,687-3,984, at more server CPU per call. 32 beat 16 in 5 of
 * 7 paired rounds (means 5,230 and 4,778), but inFlightMax also separates tenants once runningMax
 * (4 per core) reaches it, and the event loop is one thread whatever the core count: it stays 16,
 * and a tenant alone runs up to aloneInFlightMax, 32 (5 more paired rounds on 2026-11-29, with
 * that bound alone changed: 32 won 3, medians 5,006 and 4,763).
 */
export const loadLimitsDefault: Omit<LoadLimits, 'aloneInFlightMax'> = { inFlightMax: 16, queuedMax: 256, ratePerSecond: 2000, burst: 4000 };
/** Unless configured, a tenant alone may run this many times its inFlightMax. */
export const aloneInFlightFactor = 2;
/**
 * Calls running at once over all tenants, by default 4 per core (at least 8): enough to overlap
 * each core's work with fdatasync waits, few enough that a quiet tenant's call shares the loop
 * with a handful of the flood's calls rather than all of them. Measured (bench/fairness.ts):
 * with 32 the flood's 16 admitted calls left the quiet tenant ~1/5 of the server (p99 2.4-3.6x
 * its alone figure); with 8, round robin between tenants gives it about half.
 */
export const runningCallsMaxDefault = Math.max(8, 4 * os.availableParallelism());
export const runningCallsMaxCeiling = 100_000;
/** A tenant's first call (none of its own running) is admitted while fewer than runningMax x this run (a lone tenant's extra calls aside). */
export const firstCallsFactor = 4;
/** A tenant counts as present for this long after its last call: the work-conserving rule lets another run past `runningMax` only once all others have been quiet this long. */
export const soloQuietMs = 1_000;
/** Hard ceilings on configured values: bounded everything (DESIGN §2.6). */
export const loadLimitsCeiling: LoadLimits = { inFlightMax: 10_000, aloneInFlightMax: 10_000, queuedMax: 100_000, ratePerSecond: 1_000_000, burst: 1_000_000 };

/** The limits a guard runs with: the defaults under those given; a lone tenant's bound, unless given, aloneInFlightFactor times the per-tenant one. */
export function effectiveLoadLimits(limits: Partial<LoadLimits>): LoadLimits {
  const merged = { ...loadLimitsDefault, ...limits };
  return { ...merged, aloneInFlightMax: merged.aloneInFlightMax ?? Math.min(loadLimitsCeiling.aloneInFlightMax, aloneInFlightFactor * merged.inFlightMax) };
}
/** Retry-After never says more than this, nor less than 1 s on the wire (its unit). */
export const retryAfterMsMax = 60_000;
/** Per-tenant state kept; quiet tenants beyond it are forgotten (a forgotten bucket is a full one). */
export const trackedTenantsMax = 100_000;

export class BusyError extends MemoryError {
  constructor(message: string, readonly retryAfterMs: number, readonly limit: 'queue' | 'rate') {
    super('busy', message, `retry after ${Math.ceil(retryAfterMs / 1000)} s`);
    this.name = 'BusyError';
  }
}

/**
 * A refusal must cost next to nothing: under a flood there are many per second, and a stack
 * trace (the dominant cost of an Error) says nothing here (the caller is always the guard).
 */
function busy(message: string, retryAfterMs: number, limit: 'queue' | 'rate'): BusyError {
  const limitBefore = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new BusyError(message, retryAfterMs, limit);
  } finally {
    Error.stackTraceLimit = limitBefore;
  }
}

export function checkLoadLimits(limits: LoadLimits): LoadLimits {
  for (const key of Object.keys(loadLimitsCeiling) as (keyof LoadLimits)[]) {
    const v = limits[key];
    // A queue of 0 is meaningful (refuse at once past inFlightMax); a rate may be fractional
    // (0.5 calls/s); the other limits are whole and need room for one call.
    const rate = key === 'ratePerSecond';
    const floor = key === 'queuedMax' ? 0 : 1;
    const inRange = rate ? v > 0 : v >= floor && Number.isInteger(v);
    if (!Number.isFinite(v) || !inRange || v > loadLimitsCeiling[key]) {
      throw new MemoryError('invalid_argument', `load limit ${key} = ${v} is outside ${rate ? '(0' : floor}..${loadLimitsCeiling[key]}`);
    }
  }
  if (limits.aloneInFlightMax < limits.inFlightMax) {
    throw new MemoryError('invalid_argument', `load limit aloneInFlightMax = ${limits.aloneInFlightMax} is below inFlightMax = ${limits.inFlightMax}`);
  }
  return limits;
}

interface TenantLoad {
  readonly tenant: string;
  tokens: number;
  refilledAtMs: number;
  inFlight: number;
  /** Waiters in arrival order; each is granted a slot (and its release) when dispatched. */
  readonly queue: ((release: Release) => void)[];
  /** In `TenantLoadGuard.ready` (has waiters), so it is not added twice. */
  ready: boolean;
}

/** A granted slot; release it exactly once when the call is done (success or failure). */
export type Release = () => void;

export interface LoadGuardOptions {
  /** Calls running at once over all tenants (default runningCallsMaxDefault). */
  readonly runningMax?: number;
  readonly nowMs?: () => number;
  readonly onBusy?: (tenant: string, limit: 'queue' | 'rate') => void;
}

export class TenantLoadGuard {
  readonly limits: LoadLimits;
  readonly runningMax: number;
  private readonly tenants = new Map<string, TenantLoad>();
  /** Tenants with waiters, in the order they get the next free slot (round robin). */
  private readonly ready: TenantLoad[] = [];
  private running = 0;
  /** The tenant that called last, when, and the last call of any other tenant (for `alone`). */
  private lastCaller: string | undefined;
  private lastCallAtMs = Number.NEGATIVE_INFINITY;
  private otherCallAtMs = Number.NEGATIVE_INFINITY;
  /** The tenant granted a slot last: when all running calls are one tenant's, they are its. */
  private lastGranted: TenantLoad | undefined;
  private readonly nowMs: () => number;
  private readonly onBusy: ((tenant: string, limit: 'queue' | 'rate') => void) | undefined;

  constructor(limits: Partial<LoadLimits> = {}, options: LoadGuardOptions = {}) {
    this.limits = checkLoadLimits(effectiveLoadLimits(limits));
    this.runningMax = options.runningMax ?? runningCallsMaxDefault;
    if (!Number.isInteger(this.runningMax) || this.runningMax < 1 || this.runningMax > runningCallsMaxCeiling) {
      throw new MemoryError('invalid_argument', `load limit runningMax = ${this.runningMax} is outside 1..${runningCallsMaxCeiling}`);
    }
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.onBusy = options.onBusy;
  }

  /**
   * Admit one call of `tenant`: throws BusyError past a limit, else resolves with a release
   * once a slot is free (at once when under both bounds and nobody is waiting).
   */
  acquire(tenant: string): Promise<Release> {
    const refusal = this.refusalFor(tenant);
    if (refusal !== undefined) return Promise.reject(refusal);
    const load = this.loadOf(tenant);
    load.tokens -= 1;
    this.noteCall(load);
    // Nobody waiting anywhere: the fast path. A tenant with nothing running goes in at once
    // too (up to the hard bound): its one call is never queued behind other tenants' work,
    // and many tenants making one call each (a cold open each) do not wait in line. Otherwise
    // join the line, so a tenant that keeps its slots full cannot overtake others' waiters.
    const free = this.ready.length === 0 && this.underOwnBound(load) && this.hasRoomFor(load);
    if (free || (load.inFlight === 0 && load.queue.length === 0 && this.running < this.runningMax * firstCallsFactor + this.loneExtra())) {
      return Promise.resolve(this.grant(load));
    }
    return new Promise((resolve) => {
      load.queue.push(resolve);
      if (!load.ready) {
        load.ready = true;
        this.ready.push(load);
      }
      this.dispatch();
    });
  }

  /**
   * `count` more calls of `tenant` at once, or a refusal now: never waits. For the requests of a
   * JSON-RPC batch past its first (its POST was admitted as one call): a POST holding a slot and
   * waiting for more could wait for its own. A batch past inFlightMax is never admitted, so it is
   * refused as too large (limit_exceeded) rather than busy.
   */
  acquireNow(tenant: string, count: number): Release {
    if (!(Number.isInteger(count) && count >= 1)) throw new Error(`load guard: acquireNow of ${count} calls`);
    if (count + 1 > this.limits.inFlightMax) {
      throw new MemoryError('limit_exceeded', `a batch of ${count + 1} requests is more than the ${this.limits.inFlightMax} calls a tenant may run at once (IOBOXX_TENANT_INFLIGHT_MAX)`,
        `send at most ${this.limits.inFlightMax} requests in one batch, or each in its own POST`);
    }
    const load = this.loadOf(tenant);
    this.refill(load);
    if (load.tokens < count) {
      const retryAfterMs = Math.min(retryAfterMsMax, Math.ceil(((count - load.tokens) / this.limits.ratePerSecond) * 1000));
      this.onBusy?.(tenant, 'rate');
      throw busy(`tenant ${tenant} is over its rate of ${this.limits.ratePerSecond} calls/s`, retryAfterMs, 'rate');
    }
    const alone = this.alone(load);
    const underOwnBound = load.inFlight + count <= this.limits.inFlightMax || (load.inFlight + count <= this.limits.aloneInFlightMax && alone);
    if (this.ready.length > 0 || !underOwnBound || !(this.running + count <= this.runningMax || alone)) {
      this.onBusy?.(tenant, 'queue');
      throw busy(`tenant ${tenant} has ${load.inFlight} calls running and ${load.queue.length} waiting: no room for ${count} more of a batch at once`, 1000, 'queue');
    }
    load.tokens -= count;
    this.noteCall(load);
    const releases = Array.from({ length: count }, () => this.grant(load));
    return () => {
      for (const release of releases) release();
    };
  }

  /** The refusal `acquire(tenant)` gives now (and counts it), else undefined. */
  private refusalFor(tenant: string): BusyError | undefined {
    const load = this.loadOf(tenant);
    this.refill(load);
    if (load.tokens < 1) {
      const retryAfterMs = Math.min(retryAfterMsMax, Math.ceil(((1 - load.tokens) / this.limits.ratePerSecond) * 1000));
      this.onBusy?.(tenant, 'rate');
      return busy(`tenant ${tenant} is over its rate of ${this.limits.ratePerSecond} calls/s`, retryAfterMs, 'rate');
    }
    const mustWait = this.ready.length > 0 || !this.underOwnBound(load) || !this.hasRoomFor(load);
    if (mustWait && load.queue.length >= this.limits.queuedMax) {
      this.onBusy?.(tenant, 'queue');
      // A slot frees as calls finish; a short wait is the honest estimate.
      return busy(`tenant ${tenant} has ${load.inFlight} calls running and ${load.queue.length} waiting`, 1000, 'queue');
    }
    return undefined;
  }

  /** acquire + run + release, as one call. */
  async run<T>(tenant: string, work: () => Promise<T>): Promise<T> {
    const release = await this.acquire(tenant);
    try {
      return await work();
    } finally {
      release();
    }
  }

  stats(tenant: string): { inFlight: number; queued: number; tokens: number } {
    const load = this.tenants.get(tenant);
    if (!load) return { inFlight: 0, queued: 0, tokens: this.limits.burst };
    this.refill(load);
    return { inFlight: load.inFlight, queued: load.queue.length, tokens: load.tokens };
  }

  /** Calls running over all tenants, and calls waiting for a slot. */
  totals(): { running: number; waiting: number } {
    let waiting = 0;
    for (const load of this.ready) waiting += load.queue.length;
    return { running: this.running, waiting };
  }

  /** One more call of `load` stays under its own bound: inFlightMax, or aloneInFlightMax while it is alone. */
  private underOwnBound(load: TenantLoad): boolean {
    return load.inFlight < this.limits.inFlightMax || (load.inFlight < this.limits.aloneInFlightMax && this.alone(load));
  }

  /** A call of `load` may take a slot as far as the shared bound goes: under it, or `load` is alone. */
  private hasRoomFor(load: TenantLoad): boolean {
    return this.running < this.runningMax || this.alone(load);
  }

  /**
   * `load` is the only tenant on the server: every running call is its own, nobody else waits,
   * and no other tenant has called for soloQuietMs (a quiet tenant between two calls is present).
   */
  private alone(load: TenantLoad): boolean {
    return this.lastCaller === load.tenant && this.running === load.inFlight
      && (this.ready.length === 0 || (this.ready.length === 1 && this.ready[0] === load))
      && this.nowMs() - this.otherCallAtMs >= soloQuietMs;
  }

  /** Calls a lone tenant runs past runningMax: a newcomer's first call is admitted past them too. */
  private loneExtra(): number {
    const lone = this.lastGranted;
    return lone !== undefined && lone.inFlight === this.running && this.running > this.runningMax ? this.running - this.runningMax : 0;
  }

  private noteCall(load: TenantLoad): void {
    const now = this.nowMs();
    if (this.lastCaller !== load.tenant) {
      this.otherCallAtMs = this.lastCallAtMs;
      this.lastCaller = load.tenant;
    }
    this.lastCallAtMs = now;
  }

  private grant(load: TenantLoad): Release {
    this.lastGranted = load;
    load.inFlight++;
    this.running++;
    let released = false;
    return () => {
      if (released) throw new Error(`load guard: slot of ${load.tenant} released twice`);
      released = true;
      load.inFlight--;
      this.running--;
      this.dispatch();
    };
  }

  /**
   * Hand free slots to waiters, one per ready tenant per pass, in ring order: the tenant just
   * served goes to the back. A tenant at its own bound is passed over (it keeps its place in the
   * ring and is served when one of its calls ends). Past runningMax only a lone tenant is served.
   */
  private dispatch(): void {
    for (let granted = true; granted && this.ready.length > 0; ) {
      granted = false;
      for (let visits = this.ready.length; visits > 0 && this.hasRoomFor(this.ready[0]!); visits--) {
        const load = this.ready.shift()!;
        if (!this.underOwnBound(load)) {
          this.ready.push(load);
          continue;
        }
        const waiter = load.queue.shift()!;
        if (load.queue.length > 0) this.ready.push(load);
        else load.ready = false;
        waiter(this.grant(load));
        granted = true;
      }
    }
  }

  private loadOf(tenant: string): TenantLoad {
    let load = this.tenants.get(tenant);
    if (load) return load;
    if (this.tenants.size >= trackedTenantsMax) this.forgetQuietTenants();
    load = { tenant, tokens: this.limits.burst, refilledAtMs: this.nowMs(), inFlight: 0, queue: [], ready: false };
    this.tenants.set(tenant, load);
    return load;
  }

  private refill(load: TenantLoad): void {
    const now = this.nowMs();
    const elapsedMs = now - load.refilledAtMs;
    if (elapsedMs <= 0) return;
    load.tokens = Math.min(this.limits.burst, load.tokens + (elapsedMs / 1000) * this.limits.ratePerSecond);
    load.refilledAtMs = now;
  }

  private forgetQuietTenants(): void {
    for (const [tenant, load] of this.tenants) {
      this.refill(load);
      if (load.inFlight === 0 && load.queue.length === 0 && load.tokens >= this.limits.burst) this.tenants.delete(tenant);
    }
  }
}
