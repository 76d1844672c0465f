/**
 * Places for long-lived things (event streams, WebSocket connections), bounded per process and
 * per tenant (DESIGN §2.6): each holds a socket and a feed of its tenant's commits for as long
 * as its client keeps it open, and none is a call (admission does not see it). The per-tenant
 * bound keeps one tenant's clients from taking every place of the process.
 */

export type TenantPlace = { readonly release: () => void } | { readonly refusal: string };

export interface TenantPlacesBounds {
  readonly totalMax: number;
  readonly perTenantMax: number;
  /** What a place holds, and the names of the two bounds, for the refusal's message. */
  readonly what: string;
  readonly totalName: string;
  readonly perTenantName: string;
}

export class TenantPlaces {
  private total = 0;
  private readonly perTenant = new Map<string, number>();

  constructor(private readonly bounds: TenantPlacesBounds) {}

  /** A place for one of `tenant`'s (released once, whenever `release` is called again), or why there is none. */
  open(tenant: string): TenantPlace {
    const { totalMax, what, totalName, perTenantName } = this.bounds;
    const perTenantMax = Math.min(this.bounds.perTenantMax, totalMax);
    const held = this.perTenant.get(tenant) ?? 0;
    if (held >= perTenantMax) return { refusal: `tenant ${tenant} has ${held} open ${what} (${perTenantName} = ${perTenantMax}): close one, or retry later` };
    if (this.total >= totalMax) return { refusal: `too many open ${what} (${totalName} = ${totalMax}); retry later` };
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
}
