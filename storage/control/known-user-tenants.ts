/**
 * What one projection pass has learned of kc_user_tenants (the tenants each Keycloak user is
 * known in), so that a burst of events about one user costs a query or two, not two or three per
 * event. Safe to cache because the table only grows: a pair once seen stays true. A pair another
 * node adds during the pass may be missed here; the cost of that is work done twice (the user's
 * history given again as no-ops, an insert that finds its row), never a wrong projection, and the
 * next pass starts afresh.
 */
import type { ControlPlane } from './control-plane.js';

/** Users one pass remembers at most; past it the cache starts over (only queries are lost). */
export const knownUserTenantsUsersMax = 10_000;

interface UserEntry {
  readonly tenants: Set<string>;
  /** `tenants` holds every tenant the database listed (userTenants), plus those remembered since. */
  complete: boolean;
}

export class KnownUserTenants {
  private readonly users = new Map<string, UserEntry>();

  constructor(
    private readonly control: ControlPlane,
    private readonly usersMax: number = knownUserTenantsUsersMax,
  ) {}

  /** The tenants `user` is known in (ControlPlane.userTenants). */
  async tenantsOf(user: string): Promise<string[]> {
    const entry = this.users.get(user);
    if (entry?.complete) return [...entry.tenants];
    const tenants = await this.control.userTenants(user);
    const learned = this.entry(user);
    for (const tenant of tenants) learned.tenants.add(tenant);
    learned.complete = true;
    return [...learned.tenants];
  }

  async knownIn(user: string, tenant: string): Promise<boolean> {
    const entry = this.users.get(user);
    if (entry?.tenants.has(tenant)) return true;
    if (entry?.complete) return false;
    const known = await this.control.userKnownIn(user, tenant);
    if (known) this.entry(user).tenants.add(tenant);
    return known;
  }

  async remember(user: string, tenant: string): Promise<void> {
    if (this.users.get(user)?.tenants.has(tenant)) return;
    await this.control.rememberUserTenant(user, tenant);
    this.entry(user).tenants.add(tenant);
  }

  private entry(user: string): UserEntry {
    let entry = this.users.get(user);
    if (entry) return entry;
    if (this.users.size >= this.usersMax) this.users.clear();
    entry = { tenants: new Set(), complete: false };
    this.users.set(user, entry);
    return entry;
  }
}
