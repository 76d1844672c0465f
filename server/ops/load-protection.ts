/**
 * Per-tenant load protection, so one tenant flooding the server cannot crowd out the others:
 *  - a token bucket per tenant (`ratePerSecond`, `burst`): past it a call is refused at once;
 *  - a bound on a tenant's calls in flight (`inFlightMax`) with a bounded FIFO queue behind it
 *    (`queuedMax`): past both, a call is refused at once instead of waiting without end.
 * A refusal is a retryable `busy` MemoryError carrying `retryAfterMs` (HTTP: 429 + Retry-After).
 * Admission is O(1) and allocation-free on the fast path; it never awaits anything but a slot.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { MemoryError } from '../../storage/errors.js';

export interface LoadLimits {
  /** Calls of one tenant running at once. */
  readonly inFlightMax: number;
  /** Calls of one tenant waiting for a slot; past it `busy`. */
  readonly queuedMax: number;
  /** Sustained calls per second per tenant (token refill rate). */
  readonly ratePerSecond: number;
  /** Calls a tenant may make at once after being quiet (bucket size). */
  readonly burst: number;
}

export const loadLimitsDefault: LoadLimits = { inFlightMax: 64, queuedMax: 256, ratePerSecond: 2000, burst: 4000 };
/** Hard ceilings on configured values: bounded everything (DESIGN §2.6). */
export const loadLimitsCeiling: LoadLimits = { inFlightMax: 10_000, queuedMax: 100_000, ratePerSecond: 1_000_000, burst: 1_000_000 };
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
    if (!Number.isFinite(v) || v <= 0 || v > loadLimitsCeiling[key] || (key !== 'ratePerSecond' && !Number.isInteger(v))) {
      throw new MemoryError('invalid_argument', `load limit ${key} = ${v} is outside 1..${loadLimitsCeiling[key]}`);
    }
  }
  return limits;
}

interface TenantLoad {
  tokens: number;
  refilledAtMs: number;
  inFlight: number;
  readonly queue: (() => void)[];
}

/** A granted slot; release it exactly once when the call is done (success or failure). */
export type Release = () => void;

export class TenantLoadGuard {
  readonly limits: LoadLimits;
  private readonly tenants = new Map<string, TenantLoad>();
  private readonly nowMs: () => number;

  constructor(limits: Partial<LoadLimits> = {}, options: { nowMs?: () => number; onBusy?: (tenant: string, limit: 'queue' | 'rate') => void } = {}) {
    this.limits = checkLoadLimits({ ...loadLimitsDefault, ...limits });
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.onBusy = options.onBusy;
  }
  private readonly onBusy: ((tenant: string, limit: 'queue' | 'rate') => void) | undefined;

  /**
   * Admit one call of `tenant`: throws BusyError past a limit, else resolves with a release
   * once a slot is free (at once when under `inFlightMax`).
   */
  acquire(tenant: string): Promise<Release> {
    const load = this.loadOf(tenant);
    this.refill(load);
    if (load.tokens < 1) {
      const retryAfterMs = Math.min(retryAfterMsMax, Math.ceil(((1 - load.tokens) / this.limits.ratePerSecond) * 1000));
      this.onBusy?.(tenant, 'rate');
      return Promise.reject(busy(`tenant ${tenant} is over its rate of ${this.limits.ratePerSecond} calls/s`, retryAfterMs, 'rate'));
    }
    if (load.inFlight < this.limits.inFlightMax) {
      load.tokens -= 1;
      load.inFlight++;
      return Promise.resolve(this.releaseFor(tenant, load));
    }
    if (load.queue.length >= this.limits.queuedMax) {
      this.onBusy?.(tenant, 'queue');
      // A slot frees as calls finish; a short wait is the honest estimate.
      return Promise.reject(busy(`tenant ${tenant} has ${load.inFlight} calls running and ${load.queue.length} waiting`, 1000, 'queue'));
    }
    load.tokens -= 1;
    return new Promise((resolve) => load.queue.push(() => resolve(this.releaseFor(tenant, load))));
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

  private releaseFor(tenant: string, load: TenantLoad): Release {
    let released = false;
    return () => {
      if (released) throw new Error(`load guard: slot of ${tenant} released twice`);
      released = true;
      const next = load.queue.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else load.inFlight--;
    };
  }

  private loadOf(tenant: string): TenantLoad {
    let load = this.tenants.get(tenant);
    if (load) return load;
    if (this.tenants.size >= trackedTenantsMax) this.forgetQuietTenants();
    load = { tokens: this.limits.burst, refilledAtMs: this.nowMs(), inFlight: 0, queue: [] };
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

/** Whole seconds for a Retry-After header (at least 1: its unit is seconds). */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(Math.min(retryAfterMs, retryAfterMsMax) / 1000));
}

/**
 * Express middleware: admits each request under its tenant's limits (a request without a
 * tenant — not yet authenticated — passes), answers 429 with Retry-After past them, and frees
 * the slot when the response is done. Mount it on request/response routes (POST /mcp), not on
 * long-lived streams (a GET event stream would hold a slot for its lifetime).
 */
export function loadProtectionMiddleware(guard: TenantLoadGuard, tenantOf: (req: Request) => string | undefined): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const tenant = tenantOf(req);
    if (tenant === undefined) return next();
    guard.acquire(tenant).then(
      (release) => {
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          release();
        };
        res.once('finish', finish);
        res.once('close', finish);
        next();
      },
      (error: unknown) => {
        if (!(error instanceof BusyError)) return next(error);
        res.setHeader('Retry-After', String(retryAfterSeconds(error.retryAfterMs)));
        res.status(429).json({
          jsonrpc: '2.0',
          id: null,
          error: { code: -32000, message: error.message, data: { code: 'busy', limit: error.limit, retryAfterMs: error.retryAfterMs, hint: error.hint } },
        });
      },
    );
  };
}
