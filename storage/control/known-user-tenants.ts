/**
 * What one projection pass has learned of kc_user_tenants (the tenants each Keycloak user is
 * known in), so that a burst of events about one user costs a query or two, not two or three per
 * event. A pair goes only when the user's deletion is applied there, and this pass forgets what it
 * knew of a user whose pairs it deletes. A pair another node adds during the pass may be missed
 * here; the cost of that is work done twice (the user's history given again as no-ops, an insert
 * that finds its row). Pairs another node deletes during the pass (its projection of the user's
 * deletion, which this pass then finds projected) may still be seen here: events of the deleted
 * user still reach those tenants, where the deletion leaves them nothing to change. The next pass
 * starts afresh.
 */
import { kcUserTenantsMax, type ControlPlane } from './control-plane.js';

/** Users one pass remembers at most; past it the cache starts over (only queries are lost). */
export const knownUserTenantsUsersMax = 10_000;

interface UserEntry {
  readonly tenants: Set<string>;
  /** `tenants` holds every tenant the database listed (userTenants), plus those remembered since. */
  complete: boolean;
}

export class KnownUserTenants {
  private readonly users = new Map<string, UserEntry>();
  /** The table's pairs: counted when first asked, then followed by what this pass adds and deletes. */
  private pairs: number | undefined;

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
    // As many as the query returns at most: there may be more (a user known in more tenants than kcUserTenantsMax before it was enforced).
    learned.complete = tenants.length < kcUserTenantsMax;
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
    const added = await this.control.rememberUserTenant(user, tenant);
    if (added && this.pairs !== undefined) this.pairs++;
    this.entry(user).tenants.add(tenant);
  }

  /**
   * The pairs kc_user_tenants holds: one count a pass, at the first new pair (other nodes' passes
   * adding pairs meanwhile are not seen: a bound on it may be passed by what they add in one pass).
   */
  async pairCount(): Promise<number> {
    this.pairs ??= await this.control.userTenantPairs();
    return this.pairs;
  }

  /** The user's deletion was applied in `tenants`: they are known there no more. */
  async forget(user: string, tenants: readonly string[]): Promise<void> {
    this.users.delete(user);
    const gone = await this.control.forgetUserTenants(user, tenants);
    if (this.pairs !== undefined) this.pairs -= gone;
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
