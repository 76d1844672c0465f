/**
 * The bound on open 2026-era `subscriptions/listen` streams (DESIGN §2.6). Each holds a socket,
 * an MCP handler and a feed of its tenant's commits for as long as its client keeps it open, and
 * none is a call (no admission, no lease): without a bound, clients could open them until the
 * process ran out of sockets or memory. Past a bound a listen is refused 503 with Retry-After;
 * the per-tenant bound keeps one tenant from taking every stream of the process.
 */

/** Open listen streams per process. */
export const listenStreamsMax = 4_096;
/** Open listen streams per tenant. */
export const listenStreamsPerTenantMax = 1_024;

export type ListenPlace = { readonly release: () => void } | { readonly refusal: string };

export class ListenStreams {
  private total = 0;
  private readonly perTenant = new Map<string, number>();

  constructor(
    readonly totalMax = listenStreamsMax,
    readonly perTenantMax = Math.min(listenStreamsPerTenantMax, totalMax),
  ) {}

  /** A place for one stream of `tenant` (released once, when the stream ends), or why there is none. */
  open(tenant: string): ListenPlace {
    const held = this.perTenant.get(tenant) ?? 0;
    if (held >= this.perTenantMax) {
      return { refusal: `tenant ${tenant} has ${held} open subscriptions/listen streams (listenStreamsPerTenantMax = ${this.perTenantMax}): close one, or retry later` };
    }
    if (this.total >= this.totalMax) return { refusal: `too many open subscriptions/listen streams (listenStreamsMax = ${this.totalMax}); retry later` };
    this.total++;
    this.perTenant.set(tenant, held + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = this.perTenant.get(tenant)! - 1;
        if (left === 0) this.perTenant.delete(tenant);
        else this.perTenant.set(tenant, left);
      },
    };
  }

  /** Open streams, per process and of `tenant`. */
  count(tenant?: string): number {
    return tenant === undefined ? this.total : this.perTenant.get(tenant) ?? 0;
  }
}
