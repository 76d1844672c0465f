/**
 * Versioned SQL migrations of the control plane, applied at start on the direct connection
 * (never through a transaction-mode pooler) inside one transaction holding a transaction-level
 * advisory lock: two servers starting at once serialise on the lock, and the second finds
 * every version already recorded. A migration is never edited once shipped; add a new one.
 */
import pg from 'pg';
import { MemoryError } from '../errors.js';
import { pgConnectionString } from './connection-url.js';
import { addLandingSubjectUser } from './landing-subject.js';
import { backfillUserTenants } from './user-tenants-backfill.js';

/** A schema change in SQL, or a data step that needs code (the Keycloak event parser). */
export type Migration =
  | { readonly version: number; readonly name: string; readonly sql: string }
  | { readonly version: number; readonly name: string; readonly run: (client: pg.ClientBase) => Promise<void> };

/** Arbitrary but fixed: the advisory lock key every ioboxx-memory server migrates under. */
export const migrationLockKey = 0x10b0_c0de;

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'control plane',
    sql: `
      -- Keycloak events exactly as delivered; dedup_key is the event id/uid or a content hash.
      create table kc_event_landing (
        landing_id bigserial primary key,
        dedup_key text not null unique,
        tenant text,
        kind text not null,
        event_type text not null,
        event_time_ms bigint not null,
        raw json not null, -- verbatim (json keeps any escape jsonb would refuse)
        landed_at timestamptz not null default now(),
        projected_at timestamptz
      );
      create index kc_event_landing_pending on kc_event_landing (landing_id) where projected_at is null;

      -- Per projector: the highest landing id it has applied to every tenant (informational;
      -- exactly-once rests on projected_at plus the landing id recorded in the tenant store).
      create table projector_progress (
        projector text primary key,
        landing_id bigint not null,
        updated_at timestamptz not null default now()
      );

      create table run_history (
        tenant text not null,
        run_id text not null,
        kind text not null check (kind in ('bpmn', 'session')),
        definition text not null,
        outcome text not null,
        started_at timestamptz not null,
        ended_at timestamptz not null,
        details jsonb not null default '{}'::jsonb,
        recorded_at timestamptz not null default now(),
        primary key (tenant, run_id)
      );
      create index run_history_by_time on run_history (tenant, started_at);

      -- One row per audited tenant: the next chain sequence number and the shipper's lease.
      create table audit_tenants (
        tenant text primary key,
        next_seq bigint not null default 1,
        ship_owner text,
        ship_lease_until timestamptz
      );
      -- Per (tenant, source): the highest source sequence staged, so a restaged event is a no-op
      -- even after its staged row was shipped and cleared.
      create table audit_sources (
        tenant text not null,
        source text not null,
        staged_through bigint not null default 0,
        primary key (tenant, source)
      );
      -- event is json, not jsonb: an audited string may hold U+0000, which jsonb refuses,
      -- and one refused row would stall the tenant's audit for good.
      create table audit_staging (
        tenant text not null,
        seq bigint not null,
        source text not null,
        source_seq bigint not null,
        event json not null,
        staged_at timestamptz not null default now(),
        primary key (tenant, seq),
        unique (tenant, source, source_seq)
      );
      -- A batch row is written before its upload (body kept until confirmed) so a restart
      -- re-sends the very same bytes to the very same key: no gap, no second link.
      create table audit_batches (
        tenant text not null,
        batch_seq bigint not null,
        first_seq bigint not null,
        last_seq bigint not null,
        event_count integer not null,
        sha256 text not null,
        prev_sha256 text not null,
        object_key text not null,
        version_id text,
        body bytea,
        created_at timestamptz not null default now(),
        confirmed_at timestamptz,
        primary key (tenant, batch_seq)
      );
    `,
  },
  {
    version: 2,
    name: 'keycloak organizations',
    sql: `
      -- Organization id -> alias, learned from events (and tokens) that name both, so events
      -- naming an organization only by id (resourcePath organizations/{id}/...) reach the
      -- tenant named by its alias.
      create table kc_organizations (
        org_id text primary key,
        alias text not null,
        updated_at timestamptz not null default now()
      );
    `,
  },
  {
    version: 3,
    name: 'keycloak projection errors',
    sql: `
      -- Why a tenant refused a landed event for good (it is marked projected, not applied, so
      -- it cannot block the events after it); null for events applied or without a tenant.
      alter table kc_event_landing add column projection_error text;
    `,
  },
  {
    version: 4,
    name: 'keycloak user tenants',
    sql: `
      -- The tenants each Keycloak user is known in (learned as the projector applies events that
      -- name both): an event naming no organization (the user disabled or deleted realm-wide)
      -- is applied to each of them.
      create table kc_user_tenants (
        user_id text not null,
        tenant text not null,
        primary key (user_id, tenant)
      );
    `,
  },
  {
    version: 5,
    name: 'keycloak user tenants backfill',
    // Users whose events were applied before migration 4 get their tenants from those events.
    run: backfillUserTenants,
  },
  {
    version: 6,
    name: 'audit source generations',
    sql: `
      -- A source whose history restarts (a tenant store made anew, an older backup restored) goes on
      -- as a new generation with a mark of its own (source-generation.ts): family names the source,
      -- generation counts its histories; every mark before this migration is generation 1.
      alter table audit_sources add column family text;
      alter table audit_sources add column generation integer not null default 1;
      update audit_sources set family = source;
      alter table audit_sources alter column family set not null;
      create unique index audit_sources_generation on audit_sources (tenant, family, generation);
      -- The digest of the row staged at staged_through: before reading past the mark the stager checks
      -- the store still holds that very row. Null: none staged under the mark since this migration.
      alter table audit_sources add column last_digest text;
    `,
  },
  {
    version: 7,
    name: 'keycloak landing subject user',
    // The user each landed event is about, so a tenant a user joins gets their earlier events.
    run: addLandingSubjectUser,
  },
  {
    version: 8,
    name: 'keycloak landing retention',
    sql: `
      -- Landings projected longer ago than the retention (landing-retention.ts) are deleted,
      -- oldest first, in chunks: this index finds them without a scan of the whole table.
      create index kc_event_landing_projected on kc_event_landing (projected_at) where projected_at is not null;
    `,
  },
  {
    version: 9,
    name: 'keycloak user history naming a tenant',
    sql: `
      -- A change of the user itself (a profile update) naming one organization reaches every
      -- tenant the user is known in, and a tenant the user joins later gets it with the rest of
      -- the user's history (ControlPlane.userHistory): its arm of that query reads this index.
      -- Landings from before migration 7 that name a tenant record no subject user: not in it.
      create index kc_event_landing_user_named_history on kc_event_landing (subject_user, landing_id)
        where tenant is not null and subject_user is not null;
    `,
  },
  {
    version: 10,
    name: 'keycloak deleted users and organizations',
    sql: `
      -- A deleted organization's row is marked when its ORGANIZATION-DELETE is projected and kept
      -- as long as landings are (landing-retention.ts), so a landing naming it only by id still
      -- reaches its tenant; then it is deleted.
      alter table kc_organizations add column deleted_at timestamptz;
      create index kc_organizations_deleted on kc_organizations (deleted_at) where deleted_at is not null;
      update kc_organizations set deleted_at = gone.projected_at
      from (select substring(raw->>'resourcePath' from '^organizations/([^/]+)$') as org_id, max(projected_at) as projected_at
            from kc_event_landing where kind = 'admin' and event_type = 'ORGANIZATION-DELETE' and projected_at is not null
            group by 1) as gone
      where kc_organizations.org_id = gone.org_id;
      -- A user's tenants go once their deletion is applied (keycloak-projector.ts). Users deleted
      -- before: their pairs go when their newest deletion still landed was applied everywhere (no
      -- deletion of theirs refused) and nothing landed naming a tenant is newer than it.
      delete from kc_user_tenants
      using (select subject_user, max(event_time_ms) as deleted_ms from kc_event_landing
             where subject_user is not null and projected_at is not null
               and ((kind = 'user' and event_type = 'DELETE_ACCOUNT')
                 or (kind = 'admin' and event_type = 'USER-DELETE' and raw->>'resourcePath' ~ '^users/[^/]+$'))
             group by subject_user
             having bool_and(projection_error is null)) as gone
      where kc_user_tenants.user_id = gone.subject_user
        and not exists (select 1 from kc_event_landing later
                        where later.subject_user = gone.subject_user and later.tenant is not null
                          and later.event_time_ms > gone.deleted_ms and later.projection_error is null);
    `,
  },
  {
    version: 11,
    name: 'keycloak organization deletions',
    sql: `
      -- An organization's row made anew (a late event naming it by id and alias) is made marked
      -- deleted when its ORGANIZATION-DELETE is still landed (ControlPlane.rememberOrganization):
      -- this index finds that landing by its resource path, holding the deletions only.
      create index kc_event_landing_organization_deletes on kc_event_landing ((raw->>'resourcePath'))
        where kind = 'admin' and event_type = 'ORGANIZATION-DELETE';
    `,
  },
  {
    version: 12,
    name: 'keycloak organization named time',
    sql: `
      -- The newest Keycloak time (event_time_ms) of an event that named the organization by id and
      -- alias (ControlPlane.rememberOrganization). Its ORGANIZATION-DELETE marks the row only when
      -- no newer event named it: one made again (an import keeping its id) whose events were
      -- projected before that older deletion stays live. Null (rows from before): not known, a
      -- deletion marks as it did.
      alter table kc_organizations add column named_ms bigint;
    `,
  },
  {
    version: 13,
    name: 'run history details as json',
    sql: `
      -- A run's details are the caller's JSON (a session's details, a BPMN run's details and
      -- reason): a string in them may hold U+0000, which jsonb refuses. One such row refused
      -- would stall the tenant's outbox drain, and the access-log staging after it, for good;
      -- json keeps any escape, as audit_staging.event and kc_event_landing.raw do.
      alter table run_history alter column details drop default;
      alter table run_history alter column details type json using details::json;
      alter table run_history alter column details set default '{}'::json;
    `,
  },
];

/** Applies every migration not yet recorded; returns the versions this call applied. */
export async function applyMigrations(directUrl: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: pgConnectionString(directUrl) });
  // A connection lost mid-migration rejects the query in flight; unheard, its 'error' event would end the process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('begin');
    await client.query('select pg_advisory_xact_lock($1)', [migrationLockKey]);
    await client.query(
      `create table if not exists control_migrations (
         version integer primary key, name text not null, applied_at timestamptz not null default now())`,
    );
    const done = await client.query<{ version: number }>('select version from control_migrations');
    const applied = new Set(done.rows.map((r) => Number(r.version)));
    const known = Math.max(...migrations.map((m) => m.version));
    const newer = [...applied].filter((version) => version > known);
    if (newer.length > 0) {
      throw new MemoryError(
        'conflict',
        `the control-plane database is at migration version ${Math.max(...newer)}, and this server knows up to ${known}: a newer server has migrated it`,
        'run the newer ioboxx-memory version against it (migrations only go forward), or point DATABASE_URL at a database of this version',
      );
    }
    const ran: number[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      if ('sql' in migration) await client.query(migration.sql);
      else await migration.run(client);
      await client.query('insert into control_migrations (version, name) values ($1, $2)', [migration.version, migration.name]);
      ran.push(migration.version);
    }
    await client.query('commit');
    return ran;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
}
