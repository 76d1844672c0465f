/**
 * Tenants in trouble, for /readyz and /metrics: a store open in the failed state (a fdatasync
 * failed, or its files went away: it refuses writes until reopened), or a store whose last open
 * failed within `openFailureRecentMs`. One such tenant does not make the server unready (the
 * others are served): /readyz lists them in its body, bounded, and a gauge counts them.
 */
import type { TenantRegistryEvent } from '../tenants/registry.js';
import { storeOpenFailureCode } from '../tenants/open-refusal.js';

/** /readyz lists at most this many degraded tenants (the count says how many there are). */
export const degradedTenantsListedMax = 50;
/** A failed open counts as trouble this long, unless the tenant opens since. */
export const openFailureRecentMs = 10 * 60_000;
/** Open failures remembered at most (the oldest is forgotten first): memory stays bounded whatever the tenant count. */
export const openFailuresRememberedMax = 10_000;

export const degradedStates = ['store_failed', 'open_failed'] as const;
export type DegradedState = (typeof degradedStates)[number];

export interface DegradedTenant {
  readonly tenant: string;
  readonly state: DegradedState;
  /** open_failed: the errno or engine code (ENOSPC, damaged_store, conflict, ...). */
  readonly code?: string;
  /** open_failed: when the last open failed (ms since epoch). */
  readonly atMs?: number;
}

export interface DegradedTenantsReport {
  readonly count: number;
  /** The first `degradedTenantsListedMax`: failed stores first, then the newest open failures. */
  readonly listed: readonly DegradedTenant[];
}

interface OpenFailure {
  readonly code: string | undefined;
  readonly atMs: number;
}

export class DegradedTenants {
  /** Insertion order is failure order: the first entry is the oldest. */
  private readonly openFailures = new Map<string, OpenFailure>();

  /** `failedStores`: the tenants whose open store is failed now (read at each report). */
  constructor(
    private readonly failedStores: () => readonly string[],
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** Pass the tenant registry's events: an open failure is remembered, an open forgets it. */
  readonly observe = (event: TenantRegistryEvent): void => {
    if (event.kind === 'opened') this.openFailures.delete(event.tenant);
    if (event.kind !== 'open_failed') return;
    this.openFailures.delete(event.tenant); // re-inserted as the newest
    this.openFailures.set(event.tenant, { code: storeOpenFailureCode(event.error), atMs: this.nowMs() });
    if (this.openFailures.size > openFailuresRememberedMax) this.openFailures.delete(this.openFailures.keys().next().value!);
  };

  counts(): Record<DegradedState, number> {
    return { store_failed: this.failedStores().length, open_failed: this.recentOpenFailures().length };
  }

  report(): DegradedTenantsReport {
    const failed = this.failedStores().map((tenant): DegradedTenant => ({ tenant, state: 'store_failed' }));
    const openFailed = this.recentOpenFailures().reverse().map(([tenant, f]): DegradedTenant => ({
      tenant, state: 'open_failed', ...(f.code !== undefined && { code: f.code }), atMs: f.atMs,
    }));
    const all = [...failed, ...openFailed];
    return { count: all.length, listed: all.slice(0, degradedTenantsListedMax) };
  }

  /** Oldest first; older ones are forgotten on the way. */
  private recentOpenFailures(): [string, OpenFailure][] {
    const since = this.nowMs() - openFailureRecentMs;
    for (const [tenant, f] of this.openFailures) {
      if (f.atMs >= since) break;
      this.openFailures.delete(tenant);
    }
    return [...this.openFailures];
  }
}
