/**
 * Migration 5's data step. kc_user_tenants (migration 4) learns the tenants a Keycloak user is
 * known in as the projector applies events naming both; a user whose events were applied
 * before it existed was missing, so an event naming no organization (an admin disabling or
 * deleting the user, DELETE_ACCOUNT) reached none of their tenants. This pass reads the landed
 * events the projector applied (projected, not refused), in pages by landing id, derives user
 * and tenant as the projector does (the event's subjectUserId, tenantOf) and records each pair.
 */
import type pg from 'pg';
import { keycloakEventFromJson, type KeycloakEvent } from './keycloak-event.js';
import { tenantOf } from './keycloak-projector.js';

/** Landings read (and held) at once. */
export const userTenantsBackfillPageRowsMax = 1_000;

export async function backfillUserTenants(client: pg.ClientBase): Promise<void> {
  for (let after = 0; ; ) {
    const page = await client.query<{ landing_id: string; dedup_key: string; raw: unknown }>(
      `select landing_id::text, dedup_key, raw from kc_event_landing
       where projected_at is not null and projection_error is null and landing_id > $1
       order by landing_id limit $2`,
      [after, userTenantsBackfillPageRowsMax],
    );
    if (page.rows.length === 0) return;
    after = Number(page.rows.at(-1)!.landing_id);
    const events = page.rows.flatMap((row) => readableEvent(row.raw, row.dedup_key));
    const orgIds = events.flatMap((event) => (event.organization.alias === null && event.organization.id !== null ? [event.organization.id] : []));
    const aliases = await client.query<{ org_id: string; alias: string }>('select org_id, alias from kc_organizations where org_id = any($1::text[])', [orgIds]);
    const aliasOf = new Map(aliases.rows.map((row) => [row.org_id, row.alias]));
    const users: string[] = [];
    const tenants: string[] = [];
    for (const event of events) {
      const tenant = await tenantOf(async (orgId) => aliasOf.get(orgId), event);
      if (tenant === null || event.subjectUserId === null) continue;
      users.push(event.subjectUserId);
      tenants.push(tenant);
    }
    await client.query('insert into kc_user_tenants (user_id, tenant) select * from unnest($1::text[], $2::text[]) on conflict do nothing', [users, tenants]);
  }
}

/** The landed event, or none when today's parser refuses it (the projector could not have applied it either). */
function readableEvent(raw: unknown, dedupKey: string): KeycloakEvent[] {
  try {
    return [keycloakEventFromJson(raw, dedupKey)];
  } catch {
    return [];
  }
}
