/**
 * Applies landed Keycloak events to their tenants' `kc_*` tables, in landing order, exactly
 * once and restart-safe: `applyToTenant` runs a system reducer that records the landing id in
 * the same transaction as its changes (so applying it again is a no-op), and only then is the
 * landing marked projected. A crash between the two replays the event into a no-op (in every
 * tenant it reached, for an event applied to each tenant its user is known in).
 * Landing order is not Keycloak's order (redeliveries, reordering webhooks): the tenant's
 * reducer keeps the newest change per user, field, membership and grant by Keycloak time
 * (tools/kc-clock.ts), so the order here decides nothing.
 *
 * The control plane's own rows follow the realm, not its age: a user is known (kc_user_tenants)
 * in each tenant an event about them naming it was applied in (at most kcUserTenantsMax tenants a
 * user, kcUserTenantPairsMax pairs a realm: an event past either is refused whole), and in
 * none once their deletion is applied there (an event older than it, arriving after, makes them
 * known nowhere again); an organization is known (kc_organizations) once an event naming its id
 * and alias lands or is projected (at most kcOrganizationsMax a realm: an event past it is refused whole),
 * its deletion marks its row, which goes after the landing retention (landing-retention.ts) unless
 * an event newer than the deletion unmarks it (made again with the same id). A
 * user removed from an organization stays known in its tenant: it still holds the user's profile,
 * which the user's deletion must reach.
 */
import { MemoryError } from '../errors.js';
import { kcUserTenantPairsMax, kcUserTenantsMax, type ControlPlane } from './control-plane.js';
import { keycloakEventFromJson, keycloakEventTypesOfUser, organizationDeletedBy, userDeletedBy, type KeycloakEvent } from './keycloak-event.js';
import { KnownOrganizations } from './keycloak-organizations.js';
import { KnownUserTenants } from './known-user-tenants.js';

export const projectorBatchMax = 256;
/**
 * A user's earlier events naming no tenant given to a tenant the user becomes known in: the
 * newest this many by Keycloak time (of the types the projection applies). Older ones are not
 * replayed there; what they set that no newer event set again is missing in that tenant.
 */
export const userHistoryReplayedMax = 1_000;
export const keycloakProjectorName = 'kc';

export type ApplyKeycloakEvent = (tenant: string, event: KeycloakEvent, landingId: number) => Promise<void>;

export interface ProjectionResult {
  readonly projected: number;
  /** Events that reached no tenant, or that a tenant refused for good: marked, not (all) applied. */
  readonly skipped: number;
}

export interface ProjectionOptions {
  readonly batchMax?: number;
  /** An event its tenant refused for good (marked projected with the reason, not applied): log it. */
  readonly onRefused?: (landingId: number, tenant: string, error: unknown) => void;
  /** Events replayed to a tenant a user becomes known in; default userHistoryReplayedMax (tests use fewer). */
  readonly userHistoryMax?: number;
  /** A user's history replayed to `tenant` was cut at `replayed` events (older ones not applied there): log it. */
  readonly onUserHistoryCut?: (user: string, tenant: string, replayed: number) => void;
  /** Tenants a user may be known in; default kcUserTenantsMax (tests use fewer; never more). */
  readonly userTenantsMax?: number;
  /** Pairs of user and tenant the realm may hold; default kcUserTenantPairsMax (tests use fewer). */
  readonly userTenantPairsMax?: number;
  /** Organizations (kc_organizations rows) the realm may hold; default kcOrganizationsMax (tests use fewer). */
  readonly organizationsMax?: number;
}

/**
 * Whether the tenant refused the event for good: a typed refusal other than "away/busy", or the
 * engine refusing the data itself (a RangeError such as a stack overflow on a deeply nested
 * event, a TypeError). Applying it again would fail the same way and block every later event of
 * every tenant, so it is marked instead. Anything else (the database or the tenant's store away,
 * a crash) is retried, in order.
 */
export function refusedForGood(error: unknown): boolean {
  if (error instanceof MemoryError) return error.code !== 'unavailable' && error.code !== 'busy';
  return error instanceof RangeError || error instanceof TypeError;
}

/**
 * The tenant rule of `tenantOfKeycloakEvent`, with an organization named only by id resolved
 * to its alias when the control plane has learned it (so it reaches the alias-named tenant).
 */
export async function tenantOf(organizationAlias: (orgId: string) => Promise<string | undefined>, event: KeycloakEvent): Promise<string | null> {
  const { id, alias } = event.organization;
  if (alias) return alias;
  if (!id) return null;
  return (await organizationAlias(id)) ?? id;
}

/** One pass over everything pending. An operating error stops the pass (order is kept) and is thrown. */
export async function projectKeycloakEvents(
  control: ControlPlane,
  applyToTenant: ApplyKeycloakEvent,
  options: ProjectionOptions = {},
): Promise<ProjectionResult> {
  const batchMax = options.batchMax ?? projectorBatchMax;
  const userHistoryMax = options.userHistoryMax ?? userHistoryReplayedMax;
  const userTenantsMax = Math.min(options.userTenantsMax ?? kcUserTenantsMax, kcUserTenantsMax);
  const userTenantPairsMax = options.userTenantPairsMax ?? kcUserTenantPairsMax;
  let projected = 0;
  let skipped = 0;
  const userTenants = new KnownUserTenants(control);
  const organizations = new KnownOrganizations(control, options.organizationsMax);
  /** Why the event is refused for good (reported), as its refusal. */
  const refuse = (landingId: number, tenant: string, error: unknown): string => {
    options.onRefused?.(landingId, tenant, error);
    return error instanceof Error ? error.message : String(error);
  };
  /** The event applied, or why the tenant refused it for good (reported); anything else is thrown. */
  const applyOrRefuse = async (tenant: string, event: KeycloakEvent, landingId: number): Promise<string | undefined> => {
    try {
      await applyToTenant(tenant, event, landingId);
      return undefined;
    } catch (error) {
      if (!refusedForGood(error)) throw error;
      return refuse(landingId, tenant, error);
    }
  };
  /**
   * A user not yet known in `tenant` gets there first the earlier events about them that reach
   * every tenant the user is known in (a USER-CREATE, a realm-wide deletion, a profile change
   * naming another organization): they reached only the tenants known then. The
   * projection keeps the newest change whatever the order (tools/kc-clock.ts), and each landing
   * applies once per tenant, so a crash before the user is remembered replays them as no-ops.
   * Whether `event` may make the user known there: not when the history holds a deletion of the
   * user later than it (a late or redelivered event of a deleted user: the deletion, given first,
   * leaves nothing of the user there, and the tenant needs no later event of theirs).
   */
  const introduceUser = async (user: string, tenant: string, event: KeycloakEvent, landingId: number): Promise<boolean> => {
    if (await userTenants.knownIn(user, tenant)) return true;
    const history = await control.userHistory(user, landingId, userHistoryMax);
    let deletedLater = false;
    for (const earlier of history) {
      const given = keycloakEventFromJson(earlier.raw, earlier.dedupKey);
      if (userDeletedBy(given) === user && given.timeMs > event.timeMs) deletedLater = true;
      await applyOrRefuse(tenant, given, earlier.landingId);
    }
    // Possibly more than the bound (exactly as many): say so, the older ones are not applied there.
    if (history.length === userHistoryMax) options.onUserHistoryCut?.(user, tenant, history.length);
    return !deletedLater;
  };
  /**
   * Refuses an event that would make `user` known in one tenant more than userTenantsMax, or the
   * realm hold more pairs than userTenantPairsMax: the pair would not be remembered, and the
   * user's deletion would never reach that tenant.
   */
  const roomForUser = async (user: string, tenant: string, landingId: number): Promise<string | undefined> => {
    const known = await userTenants.tenantsOf(user);
    if (known.includes(tenant) || (await userTenants.knownIn(user, tenant))) return undefined;
    if (known.length >= userTenantsMax) {
      return refuse(landingId, tenant, new MemoryError(
        'limit_exceeded',
        `Keycloak event not applied: user ${user} is known in ${known.length} tenants, the most one user may be (kcUserTenantsMax ${userTenantsMax}); tenant ${tenant} would be one more`,
        'a user in this many organizations is likely a mistake or a service account: remove them from organizations they no longer need in Keycloak, then make the change again there (a new event)',
      ));
    }
    const pairs = await userTenants.pairCount();
    if (pairs < userTenantPairsMax) return undefined;
    return refuse(landingId, tenant, new MemoryError(
      'limit_exceeded',
      `Keycloak event not applied: kc_user_tenants holds ${pairs} pairs of user and tenant, the most a realm may (kcUserTenantPairsMax ${userTenantPairsMax}); user ${user} in tenant ${tenant} would be one more`,
      'delete users no longer needed in Keycloak (a deletion frees their pairs), then make the change again there (a new event)',
    ));
  };
  for (;;) {
    const pending = await control.pendingKeycloakEvents(batchMax);
    if (pending.length === 0) return { projected, skipped };
    const events = pending.map((landed) => keycloakEventFromJson(landed.raw, landed.dedupKey));
    // The batch's organizations are learned first (keycloak-organizations.ts); one past the
    // bound refuses its event whole, at its turn.
    const pastOrganizationsMax = new Map<number, MemoryError>();
    for (const [i, event] of events.entries()) {
      const refused = await organizations.learn(event);
      if (refused) pastOrganizationsMax.set(pending[i]!.landingId, refused);
    }
    for (const [i, landed] of pending.entries()) {
      const event = events[i]!;
      const named = await tenantOf((orgId) => control.organizationAlias(orgId), event);
      const user = event.subjectUserId;
      const tenants = named !== null ? [named] : [];
      // An event naming no organization (a user disabled or deleted realm-wide), or changing the
      // user itself whatever organization it names (keycloakEventTypesOfUser), is about the user
      // everywhere: it reaches every tenant the user is known in.
      if (user !== null && (named === null || keycloakEventTypesOfUser.includes(event.type))) {
        for (const known of await userTenants.tenantsOf(user)) if (known !== named) tenants.push(known);
      }
      const deletedUser = userDeletedBy(event);
      const organizationRefused = pastOrganizationsMax.get(landed.landingId);
      // A deletion makes the user known nowhere: never refused for the bound.
      let refusal = organizationRefused !== undefined
        ? refuse(landed.landingId, named ?? '', organizationRefused)
        : named !== null && user !== null && deletedUser === null ? await roomForUser(user, named, landed.landingId) : undefined;
      if (refusal !== undefined) {
        skipped++;
        await control.markProjected(landed.landingId, keycloakProjectorName, refusal);
        continue;
      }
      const mayKnow = named !== null && user !== null ? await introduceUser(user, named, event, landed.landingId) : false;
      const applied: string[] = [];
      for (const tenant of tenants) {
        const refused = await applyOrRefuse(tenant, event, landed.landingId);
        if (refused === undefined) applied.push(tenant);
        refusal ??= refused;
      }
      // The user's deletion applied to a tenant: the user is known there no more (one refusing it keeps them).
      if (deletedUser !== null) await userTenants.forget(deletedUser, applied);
      else if (named !== null && user !== null && refusal === undefined && mayKnow) await userTenants.remember(user, named);
      // Its row stays marked as long as landings are kept: a landing naming it by id still finds its tenant.
      const deletedOrganization = organizationDeletedBy(event);
      if (deletedOrganization !== null) await control.markOrganizationDeleted(deletedOrganization, event.timeMs);
      if (tenants.length === 0 || refusal !== undefined) skipped++;
      else projected++;
      await control.markProjected(landed.landingId, keycloakProjectorName, refusal);
    }
  }
}
