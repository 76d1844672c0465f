/**
 * Migration 7: each landed Keycloak event records the user it is about (subject_user, the
 * parser's subjectUserId), indexed for the events naming no organization. When a user becomes
 * known in a tenant (an event naming both is applied there), the projector gives that tenant
 * the user's earlier events naming no organization (a USER-CREATE, a realm-wide deletion,
 * their groups and role grants), which had reached only the tenants known then (or none).
 * The data step fills subject_user for events landed before this migration, in pages.
 */
import type pg from 'pg';
import { keycloakEventFromJson, landedSubjectUser } from './keycloak-event.js';

/** Landings read (and held) at once by the data step. */
export const landingSubjectBackfillPageRowsMax = 1_000;

export async function addLandingSubjectUser(client: pg.ClientBase): Promise<void> {
  await client.query('alter table kc_event_landing add column subject_user text');
  await client.query(
    `create index kc_event_landing_user_history on kc_event_landing (subject_user, landing_id)
     where tenant is null and subject_user is not null`,
  );
  for (let after = 0; ; ) {
    const page = await client.query<{ landing_id: string; dedup_key: string; raw: unknown }>(
      `select landing_id::text, dedup_key, raw from kc_event_landing
       where tenant is null and landing_id > $1 order by landing_id limit $2`,
      [after, landingSubjectBackfillPageRowsMax],
    );
    if (page.rows.length === 0) return;
    after = Number(page.rows.at(-1)!.landing_id);
    const ids: string[] = [];
    const users: string[] = [];
    for (const row of page.rows) {
      const user = subjectOf(row.raw, row.dedup_key);
      if (user === null) continue;
      ids.push(row.landing_id);
      users.push(user);
    }
    await client.query(
      `update kc_event_landing set subject_user = s.user_id
       from unnest($1::bigint[], $2::text[]) as s(landing_id, user_id) where kc_event_landing.landing_id = s.landing_id`,
      [ids, users],
    );
  }
}

/** The user a landed event is about; null when it names none or today's parser refuses it. */
function subjectOf(raw: unknown, dedupKey: string): string | null {
  try {
    return landedSubjectUser(keycloakEventFromJson(raw, dedupKey));
  } catch {
    return null;
  }
}
