/**
 * The Postgres control plane: Keycloak event landing, run history and audit staging, through
 * one SQL path (`pg`). Against Postgres/Supabase (`DATABASE_URL`, TLS per its sslmode) or,
 * when unset, embedded PGlite under the data dir served on loopback.
 *
 * Pooler-safe: queries are never named (no session-level prepared statements), no session
 * state is relied on between statements, and the only lock (the migration advisory lock) is a
 * transaction lock taken on the direct connection (`DATABASE_DIRECT_URL`).
 */
import { join } from 'node:path';
import pg from 'pg';
import type { JsonValue } from '../schema.js';
import { MemoryError } from '../errors.js';
import { isDatabaseError } from './database-error.js';
import { keycloakEventTypesOfUser, keycloakEventTypesProjected } from './keycloak-event.js';
import { applyMigrations } from './migrations.js';
import { pgConnectionString } from './connection-url.js';
import { embeddedPoolMax, startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js';
import { generationSource, sourceGeneration, type AuditSourceMark } from './source-generation.js';

export const poolMaxDefault = 10;
export const connectTimeoutMs = 5_000;
/**
 * A query with no answer for this long rejects, and its client is destroyed (never returned to
 * the pool): a server gone silent (stopped, or a network path dropping packets without a reset)
 * would otherwise hold the control plane's work, and its readiness probe, forever.
 */
export const queryTimeoutMsDefault = 30_000;
/**
 * The server cancels a statement running this long (set on each connection), before the client
 * gives up on it: a slow but live server answers with an error and the connection stays usable.
 */
export const statementTimeoutMsOf = (queryTimeoutMs: number): number => Math.max(1, queryTimeoutMs - Math.min(5_000, queryTimeoutMs / 10));
/** Bounds on what one call may read or write. */
export const pageRowsMax = 10_000;
export const stageEventsMax = 10_000;
/**
 * Tenants one Keycloak user is known in at most (kc_user_tenants; a user is in a few
 * organizations): an event that would make the user known in one more is refused whole
 * (keycloak-projector.ts), so every tenant holding the user is one their deletion reaches.
 */
export const kcUserTenantsMax = 1_000;
/**
 * Pairs kc_user_tenants holds at most, over the realm (20 tenants for each of kcUsersMax users,
 * about 1 GB): past it an event that would make a user known in one more tenant is refused whole
 * and logged (keycloak-projector.ts); a user's deletion frees their pairs.
 */
export const kcUserTenantPairsMax = 10_000_000;
/**
 * Rows kc_organizations holds at most, over the realm (an organization is a tenant, each a store
 * of its own: a realm of a million is far past what one deployment serves, and the table is then
 * about 200 MB). Past it an event naming an organization not yet known by id and alias is refused
 * whole and logged (keycloak-projector.ts). Rows of deleted organizations count: they are kept for
 * the landing retention, and a realm creating and deleting organizations in a loop would otherwise
 * grow the table without bound within it; they go with the retention.
 */
export const kcOrganizationsMax = 1_000_000;
/** A refusal kept with its landing is cut to this: enough to act on. */
export const projectionErrorCharsMax = 1_000;
export const auditTenantPattern = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export interface ControlPlaneConfig {
  /** Postgres/Supabase URL (may go through a transaction-mode pooler). Unset: embedded PGlite. */
  readonly databaseUrl?: string;
  /** Direct connection for migrations; defaults to databaseUrl. */
  readonly databaseDirectUrl?: string;
  /** Required for the embedded database: it persists under `${dataDir}/control-pg`. */
  readonly dataDir?: string;
  readonly poolMax?: number;
  /** See queryTimeoutMsDefault. */
  readonly queryTimeoutMs?: number;
}

/** Reads DATABASE_URL and DATABASE_DIRECT_URL. */
export function controlPlaneConfigFromEnv(env: NodeJS.ProcessEnv, dataDir: string): ControlPlaneConfig {
  return {
    ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
    ...(env.DATABASE_DIRECT_URL ? { databaseDirectUrl: env.DATABASE_DIRECT_URL } : {}),
    dataDir,
  };
}

/** A kc_organizations row as learning reads it. */
export interface OrganizationRow {
  readonly alias: string;
  readonly deleted: boolean;
  /** The newest Keycloak time of an event that named it by id and alias; null when not known (rows from before migration 12). */
  readonly namedMs: number | null;
}

export interface KeycloakLanding {
  /** Event id / webhook uid, or a content hash when the event carries neither. */
  readonly dedupKey: string;
  readonly tenant: string | null;
  readonly kind: 'user' | 'admin';
  readonly eventType: string;
  readonly eventTimeMs: number;
  readonly raw: JsonValue;
  /** The user the event is about (KeycloakEvent.subjectUserId); kept for events naming no tenant. */
  readonly subjectUser?: string | null;
}

export interface LandedKeycloakEvent extends KeycloakLanding {
  readonly landingId: number;
}

export interface RunHistoryRow {
  readonly tenant: string;
  readonly runId: string;
  readonly kind: 'bpmn' | 'session';
  readonly definition: string;
  readonly outcome: string;
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  readonly details: JsonValue;
}

export interface RunHistoryAggregate {
  /** UTC day, YYYY-MM-DD, of the run's start. */
  readonly day: string;
  readonly kind: 'bpmn' | 'session';
  readonly definition: string;
  readonly outcome: string;
  readonly count: number;
  readonly durationMsTotal: number;
  readonly durationMsAvg: number;
  readonly durationMsMax: number;
  readonly durationMsP50: number;
}

export interface AuditEventInput {
  readonly source: string;
  /** Strictly increasing per (tenant, source); an event at or below the staged mark is a duplicate. */
  readonly sourceSeq: number;
  readonly event: JsonValue;
  /** What the mark keeps when this is the last event staged: the stager checks the store still holds it (see historyRestart). */
  readonly digest?: string;
}

/** An event of a source of its own (an audit gap, a restart), staged at that source's next seq. */
export interface AuditMarker {
  readonly source: string;
  readonly event: JsonValue;
}

export interface StagedAuditEvent {
  readonly tenant: string;
  /** Gapless per-tenant chain sequence, assigned at staging. */
  readonly seq: number;
  readonly source: string;
  readonly sourceSeq: number;
  readonly event: JsonValue;
  readonly stagedAtMs: number;
}

export interface AuditBatchRecord {
  readonly tenant: string;
  readonly batchSeq: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly count: number;
  readonly sha256: string;
  readonly prevSha256: string;
  readonly key: string;
  /** Null until the upload is confirmed. */
  readonly versionId: string | null;
  /** The exact uploaded bytes, kept only while unconfirmed. */
  readonly body: Buffer | null;
}

export interface AuditBacklog {
  readonly tenant: string;
  readonly staged: number;
  readonly oldestStagedAtMs: number;
}

/** What a tenant's audit staging must hold: every seq from shippedThroughSeq + 1 to nextSeq - 1. */
export interface AuditStagingSpan {
  readonly tenant: string;
  /** The seq the tenant's next staged event gets. */
  readonly nextSeq: number;
  /** The last seq of the tenant's last confirmed batch (0: none). */
  readonly shippedThroughSeq: number;
  readonly staged: number;
  /** Lowest and highest staged seq (undefined: nothing staged). */
  readonly stagedFirstSeq?: number;
  readonly stagedLastSeq?: number;
}

/** Source of the events `closeAuditStagingHoles` puts where staged events were removed. */
export const auditHoleSource = 'audit_hole';
/** The most seqs one `closeAuditStagingHoles` fills. */
export const auditHoleSeqsMax = 100_000;

export interface ControlPlane {
  readonly backend: 'postgres' | 'pglite';
  /** The URL queries go through (for the embedded database: its loopback socket). */
  readonly url: string;
  /** Versions this open applied (empty when another process had migrated). */
  readonly migrated: readonly number[];

  landKeycloakEvent(event: KeycloakLanding): Promise<{ landingId: number; duplicate: boolean }>;
  pendingKeycloakEvents(limit: number): Promise<LandedKeycloakEvent[]>;
  /** `refusal`: why the tenant refused the event for good (kept in projection_error; it was not applied). */
  markProjected(landingId: number, projector?: string, refusal?: string): Promise<void>;
  /**
   * Records that organization `orgId` is the tenant named `alias` (learned from an event naming
   * both, as it lands and again as it is projected); whether a row was made. A row made for an organization whose deletion is
   * still landed, the deletion no older than the event (`eventTimeMs`; unset: any), is made marked
   * deleted: a late event of a deleted organization does not bring its row back for good. A row
   * marked deleted is unmarked by an event newer than every landed deletion of its organization
   * (`eventTimeMs` set): the organization was made again with the same id (an import), and its
   * row must not go with the retention. The row keeps the newest `eventTimeMs` that named it
   * (`namedMs`), which markOrganizationDeleted compares with the deletion's time.
   */
  rememberOrganization(orgId: string, alias: string, eventTimeMs?: number): Promise<boolean>;
  /** The rows kc_organizations holds, those marked deleted too (a count of the table). */
  organizationRows(): Promise<number>;
  /** The alias of `orgId`, also of one deleted (until deleteForgottenOrganizations drops it). */
  organizationAlias(orgId: string): Promise<string | undefined>;
  /** The row of `orgId`: its alias, whether it is marked deleted, and the newest Keycloak time an event named it (null: not known). */
  organizationRow(orgId: string): Promise<OrganizationRow | undefined>;
  /**
   * Marks organization `orgId` deleted (its ORGANIZATION-DELETE, of Keycloak time
   * `deletedAtEventMs`, was projected), as of the database's clock; a row already marked keeps
   * its mark, and a row an event newer than the deletion named is not marked (the organization
   * was made again with the same id, and that event was projected first). Whether a row was marked.
   */
  markOrganizationDeleted(orgId: string, deletedAtEventMs: number): Promise<boolean>;
  /** Deletes the rows (at most `limit`, oldest first) of organizations marked deleted more than `retentionMs` ago; returns how many. */
  deleteForgottenOrganizations(retentionMs: number, limit: number): Promise<number>;
  /** Records that Keycloak user `userId` is known in `tenant` (an event about the user was applied there); whether the pair is new. */
  rememberUserTenant(userId: string, tenant: string): Promise<boolean>;
  /** The pairs kc_user_tenants holds (a count of the table). */
  userTenantPairs(): Promise<number>;
  /** Forgets that `userId` is known in each of `tenants` (the user's deletion was applied there); returns how many pairs went. */
  forgetUserTenants(userId: string, tenants: readonly string[]): Promise<number>;
  /** The tenants `userId` is known in, at most kcUserTenantsMax. */
  userTenants(userId: string): Promise<string[]>;
  userKnownIn(userId: string, tenant: string): Promise<boolean>;
  /**
   * The events about `userId` that reach every tenant the user is known in, landed before
   * `beforeLandingId`: those naming no tenant, of the types the kc projection applies, and those
   * changing the user itself (keycloakEventTypesOfUser) whatever tenant they name. The newest
   * `limit` by Keycloak time.
   */
  userHistory(userId: string, beforeLandingId: number, limit: number): Promise<LandedKeycloakEvent[]>;
  /**
   * Deletes the oldest landings (at most `limit`) projected more than `retentionMs` ago by the
   * database's clock; returns how many. A landing not yet projected is never deleted.
   */
  deleteProjectedKeycloakLandings(retentionMs: number, limit: number): Promise<number>;

  /** True when inserted, false when the run was already recorded. */
  insertRunHistory(row: RunHistoryRow): Promise<boolean>;
  runHistory(tenant: string, options: { fromMs: number; toMs: number; limit: number; afterRunId?: string }): Promise<RunHistoryRow[]>;
  runHistoryAggregates(tenant: string, fromMs: number, toMs: number): Promise<RunHistoryAggregate[]>;

  /**
   * Stages events of one (tenant, source) idempotently; returns how many were new. `marker`, if
   * any, is staged just before them in the same transaction, and only when some are new.
   */
  stageAudit(tenant: string, events: readonly AuditEventInput[], marker?: AuditMarker): Promise<number>;
  /** Stages one event of a source that has no sequence of its own (server-level denials). */
  stageAuditNext(tenant: string, source: string, event: JsonValue): Promise<number>;
  stagedThrough(tenant: string, source: string): Promise<number>;
  /** The current generation of source `family` and its mark (generation 1 at 0 when nothing was staged). */
  auditSourceMark(tenant: string, family: string): Promise<AuditSourceMark>;
  /**
   * Opens the generation after `ended`, its mark at `fromSeq - 1`, and stages `marker` (the
   * restart), in one transaction. When the family's mark is no longer `ended` (the restart was
   * handled already) it opens nothing. Returns the family's current mark.
   */
  openAuditGeneration(tenant: string, ended: AuditSourceMark, fromSeq: number, marker: AuditMarker): Promise<AuditSourceMark>;
  stagedAudit(tenant: string, options: { afterSeq?: number; limit: number }): Promise<StagedAuditEvent[]>;
  auditBacklog(): Promise<AuditBacklog[]>;

  claimAuditShipping(tenant: string, owner: string, leaseMs: number): Promise<boolean>;
  releaseAuditShipping(tenant: string, owner: string): Promise<void>;
  lastConfirmedAuditBatch(tenant: string): Promise<AuditBatchRecord | undefined>;
  pendingAuditBatch(tenant: string): Promise<AuditBatchRecord | undefined>;
  /** Tenants with a batch recorded but not yet confirmed uploaded. */
  pendingAuditTenants(): Promise<string[]>;
  recordPendingAuditBatch(batch: AuditBatchRecord & { body: Buffer }): Promise<void>;
  /** Marks the batch uploaded and clears its staged rows, in one transaction. */
  confirmAuditBatch(tenant: string, batchSeq: number, versionId: string): Promise<void>;
  auditBatches(tenant?: string): Promise<AuditBatchRecord[]>;
  /** One consistent read per tenant (or the one named) of its staging against its sequence and shipped batches. */
  auditStagingSpans(tenant?: string): Promise<AuditStagingSpan[]>;
  /**
   * Fills each hole in the tenant's staging (seqs after its last batch and before its next seq
   * that hold no event: removed before they shipped) with an `audit_hole` event naming the loss,
   * so the chain records it and the tenant's shipping, stopped at the hole, goes on. Returns the
   * ranges filled (none: no hole). Refuses more than auditHoleSeqsMax seqs.
   */
  closeAuditStagingHoles(tenant: string): Promise<Array<{ fromSeq: number; toSeq: number }>>;

  close(): Promise<void>;
}

export async function openControlPlane(config: ControlPlaneConfig): Promise<ControlPlane> {
  let embedded: EmbeddedPostgres | undefined;
  let url = config.databaseUrl;
  let directUrl = config.databaseDirectUrl ?? config.databaseUrl;
  if (!url) {
    if (!config.dataDir) throw new MemoryError('invalid_argument', 'control plane: DATABASE_URL unset and no data dir for the embedded database');
    embedded = await startEmbeddedPostgres(join(config.dataDir, 'control-pg'));
    url = embedded.url;
    directUrl = embedded.url;
  }
  try {
    const migrated = await applyMigrations(directUrl!);
    const queryTimeoutMs = config.queryTimeoutMs ?? queryTimeoutMsDefault;
    const pool = new pg.Pool({
      connectionString: pgConnectionString(url),
      max: embedded ? embeddedPoolMax : (config.poolMax ?? poolMaxDefault),
      connectionTimeoutMillis: connectTimeoutMs,
      query_timeout: queryTimeoutMs,
      // TCP keepalives: an idle connection whose server vanished is noticed and dropped.
      keepAlive: true,
      // Run on each new connection before it is lent. By SET, not as a startup parameter: a
      // transaction-mode pooler (PgBouncer) refuses those. A failed SET leaves the client-side bound.
      onConnect: async (client) => {
        await client.query(`set statement_timeout = ${statementTimeoutMsOf(queryTimeoutMs)}`).catch(() => undefined);
      },
    });
    // An idle client whose server went away emits here; the next query reconnects.
    pool.on('error', () => undefined);
    return controlPlaneOn(pool, embedded ? 'pglite' : 'postgres', url, migrated, async () => {
      await pool.end();
      await embedded?.close();
    });
  } catch (error) {
    await embedded?.close();
    throw error;
  }
}

function assertTenant(tenant: string): void {
  if (!auditTenantPattern.test(tenant)) throw new MemoryError('invalid_argument', `bad tenant id ${JSON.stringify(tenant)}`);
}

function assertLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > pageRowsMax) {
    throw new MemoryError('limit_exceeded', `limit must be 1..${pageRowsMax} (got ${limit})`);
  }
}

/** Runs `fn` in one transaction on a client of `pool`: committed when it returns, rolled back when it throws. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // The pool listens for errors on idle clients only. A connection lost while lent (a pooler whose
  // server went away, a terminated backend) is emitted on the client too: with no listener that
  // event would end the process. The query in flight rejects with the same error, handled below.
  const lost = () => undefined;
  client.on('error', lost);
  const release = (broken: boolean) => {
    client.off('error', lost);
    client.release(broken);
  };
  let result: T;
  try {
    await client.query('begin');
    result = await fn(client);
    await client.query('commit');
  } catch (error) {
    // Only a client whose server answered is rolled back and lent again. One that timed out or
    // lost its connection (or whose rollback failed) may still wait on a silent server: released
    // as broken, the pool destroys it.
    const answered = !isDatabaseError(error) || error instanceof pg.DatabaseError;
    const rolledBack = answered && (await client.query('rollback').then(() => true, () => false));
    release(!rolledBack);
    throw error;
  }
  release(false);
  return result;
}

const batchColumns = `tenant, batch_seq::text, first_seq::text, last_seq::text, event_count, sha256, prev_sha256,
  object_key, version_id`;

function batchFromRow(row: Record<string, unknown>, body: Buffer | null = null): AuditBatchRecord {
  return {
    tenant: String(row.tenant),
    batchSeq: Number(row.batch_seq),
    firstSeq: Number(row.first_seq),
    lastSeq: Number(row.last_seq),
    count: Number(row.event_count),
    sha256: String(row.sha256),
    prevSha256: String(row.prev_sha256),
    key: String(row.object_key),
    versionId: row.version_id === null ? null : String(row.version_id),
    body,
  };
}

function landedEvent(r: Record<string, any>): LandedKeycloakEvent {
  return {
    landingId: Number(r.landing_id),
    dedupKey: r.dedup_key,
    tenant: r.tenant,
    kind: r.kind,
    eventType: r.event_type,
    eventTimeMs: Number(r.event_time_ms),
    raw: r.raw,
  };
}

function controlPlaneOn(
  pool: pg.Pool,
  backend: 'postgres' | 'pglite',
  url: string,
  migrated: readonly number[],
  closeAll: () => Promise<void>,
): ControlPlane {
  let closed = false;
  /** An organization's row: one query serves the alias (routing) and the deletion mark and named time (learning). */
  const organizationRow = async (orgId: string): Promise<OrganizationRow | undefined> => {
    const result = await pool.query<{ alias: string; deleted: boolean; named_ms: string | null }>(
      'select alias, deleted_at is not null as deleted, named_ms::text from kc_organizations where org_id = $1', [orgId]);
    const row = result.rows[0];
    return row === undefined ? undefined : { alias: row.alias, deleted: row.deleted, namedMs: row.named_ms === null ? null : Number(row.named_ms) };
  };
  return {
    backend,
    url,
    migrated,

    async landKeycloakEvent(event) {
      const inserted = await pool.query<{ landing_id: string }>(
        `insert into kc_event_landing (dedup_key, tenant, kind, event_type, event_time_ms, raw, subject_user)
         values ($1, $2, $3, $4, $5, $6::json, $7)
         on conflict (dedup_key) do nothing returning landing_id::text`,
        [event.dedupKey, event.tenant, event.kind, event.eventType, event.eventTimeMs, JSON.stringify(event.raw), event.subjectUser ?? null],
      );
      if (inserted.rows[0]) return { landingId: Number(inserted.rows[0].landing_id), duplicate: false };
      const existing = await pool.query<{ landing_id: string }>(
        'select landing_id::text from kc_event_landing where dedup_key = $1',
        [event.dedupKey],
      );
      return { landingId: Number(existing.rows[0]!.landing_id), duplicate: true };
    },

    async pendingKeycloakEvents(limit) {
      assertLimit(limit);
      const result = await pool.query(
        `select landing_id::text, dedup_key, tenant, kind, event_type, event_time_ms::text, raw
         from kc_event_landing where projected_at is null order by kc_event_landing.landing_id limit $1`,
        [limit],
      );
      return result.rows.map(landedEvent);
    },

    async markProjected(landingId, projector = 'kc', refusal) {
      await inTransaction(pool, async (client) => {
        await client.query(
          'update kc_event_landing set projected_at = now(), projection_error = $2 where landing_id = $1 and projected_at is null',
          [landingId, refusal?.slice(0, projectionErrorCharsMax) ?? null],
        );
        await client.query(
          `insert into projector_progress (projector, landing_id) values ($1, $2)
           on conflict (projector) do update set landing_id = greatest(projector_progress.landing_id, excluded.landing_id), updated_at = now()`,
          [projector, landingId],
        );
      });
    },

    async rememberOrganization(orgId, alias, eventTimeMs) {
      // The deletion's landing is found by its resource path (migration 11 indexes it), as
      // Keycloak sent it: the id as is, or URI-encoded. Marked as of its projection (or now).
      // excluded.deleted_at is null when no deletion at or after the event is landed: with the
      // event's time given, a marked row is then unmarked (made again); without it, never.
      // An event older than the newest that named the id keeps the alias that one gave (a late or
      // redelivered event from before the organization was made again under another alias).
      const paths = [...new Set([`organizations/${orgId}`, `organizations/${encodeURIComponent(orgId)}`])];
      const result = await pool.query<{ made: boolean }>(
        `insert into kc_organizations (org_id, alias, deleted_at, named_ms)
         values ($1, $2, (select coalesce(max(projected_at), now()) from kc_event_landing
                          where kind = 'admin' and event_type = 'ORGANIZATION-DELETE' and raw->>'resourcePath' = any($3::text[])
                            and event_time_ms >= $4
                          having count(*) > 0),
                 case when $5 then $4::bigint end)
         on conflict (org_id) do update set updated_at = now(),
           alias = case when coalesce(kc_organizations.named_ms > excluded.named_ms, false) then kc_organizations.alias else excluded.alias end,
           deleted_at = case when $5 and excluded.deleted_at is null then null else kc_organizations.deleted_at end,
           named_ms = greatest(kc_organizations.named_ms, excluded.named_ms)
         where (kc_organizations.alias <> excluded.alias and not coalesce(kc_organizations.named_ms > excluded.named_ms, false))
            or ($5 and kc_organizations.deleted_at is not null and excluded.deleted_at is null)
            or ($5 and (kc_organizations.named_ms is null or kc_organizations.named_ms < excluded.named_ms))
         returning xmax = 0 as made`,
        [orgId, alias, paths, eventTimeMs ?? Number.MIN_SAFE_INTEGER, eventTimeMs !== undefined],
      );
      return result.rows[0]?.made === true;
    },

    async organizationRows() {
      const result = await pool.query<{ n: string }>('select count(*)::text as n from kc_organizations');
      return Number(result.rows[0]!.n);
    },

    async organizationAlias(orgId) {
      return (await organizationRow(orgId))?.alias;
    },

    organizationRow,

    async markOrganizationDeleted(orgId, deletedAtEventMs) {
      const result = await pool.query(
        'update kc_organizations set deleted_at = now() where org_id = $1 and deleted_at is null and (named_ms is null or named_ms <= $2)',
        [orgId, deletedAtEventMs]);
      return result.rowCount === 1;
    },

    deleteForgottenOrganizations(retentionMs, limit) {
      return deleteAgedRows(pool, { table: 'kc_organizations', key: 'org_id', since: 'deleted_at' }, retentionMs, limit);
    },

    async rememberUserTenant(userId, tenant) {
      const result = await pool.query('insert into kc_user_tenants (user_id, tenant) values ($1, $2) on conflict do nothing', [userId, tenant]);
      return result.rowCount === 1;
    },

    async userTenantPairs() {
      const result = await pool.query<{ n: string }>('select count(*)::text as n from kc_user_tenants');
      return Number(result.rows[0]!.n);
    },

    async forgetUserTenants(userId, tenants) {
      if (tenants.length === 0) return 0;
      // The tenants a deletion reached: the one it names and the user's others (kcUserTenantsMax).
      if (tenants.length > kcUserTenantsMax + 1) throw new MemoryError('limit_exceeded', `at most ${kcUserTenantsMax + 1} tenants forgotten per call (kcUserTenantsMax + 1)`);
      const result = await pool.query('delete from kc_user_tenants where user_id = $1 and tenant = any($2::text[])', [userId, [...tenants]]);
      return result.rowCount ?? 0;
    },

    async userKnownIn(userId, tenant) {
      const result = await pool.query('select 1 from kc_user_tenants where user_id = $1 and tenant = $2', [userId, tenant]);
      return result.rows.length > 0;
    },

    async userHistory(userId, beforeLandingId, limit) {
      assertLimit(limit);
      // Two arms, each served by its partial index (migrations 7 and 9).
      const result = await pool.query(
        `select * from (
           (select landing_id::text, dedup_key, tenant, kind, event_type, event_time_ms, raw from kc_event_landing
            where subject_user = $1 and tenant is null and landing_id < $2 and event_type = any($3::text[]))
           union all
           (select landing_id::text, dedup_key, tenant, kind, event_type, event_time_ms, raw from kc_event_landing
            where subject_user = $1 and tenant is not null and landing_id < $2 and event_type = any($4::text[]))
         ) as history
         order by event_time_ms desc, landing_id::bigint desc limit $5`,
        [userId, beforeLandingId, keycloakEventTypesProjected, keycloakEventTypesOfUser, limit],
      );
      return result.rows.map(landedEvent);
    },

    deleteProjectedKeycloakLandings(retentionMs, limit) {
      return deleteAgedRows(pool, { table: 'kc_event_landing', key: 'landing_id', since: 'projected_at' }, retentionMs, limit);
    },

    async userTenants(userId) {
      const result = await pool.query<{ tenant: string }>(
        `select tenant from kc_user_tenants where user_id = $1 order by tenant limit ${kcUserTenantsMax}`,
        [userId],
      );
      return result.rows.map((r) => r.tenant);
    },

    async insertRunHistory(row) {
      assertTenant(row.tenant);
      const result = await pool.query(
        `insert into run_history (tenant, run_id, kind, definition, outcome, started_at, ended_at, details)
         values ($1, $2, $3, $4, $5, to_timestamp($6::float8 / 1000), to_timestamp($7::float8 / 1000), $8::json)
         on conflict (tenant, run_id) do nothing`,
        [row.tenant, row.runId, row.kind, row.definition, row.outcome, row.startedAtMs, row.endedAtMs, JSON.stringify(row.details)],
      );
      return result.rowCount === 1;
    },

    async runHistory(tenant, { fromMs, toMs, limit, afterRunId }) {
      assertTenant(tenant);
      assertLimit(limit);
      const result = await pool.query(
        `select tenant, run_id, kind, definition, outcome,
                (extract(epoch from started_at) * 1000)::float8 as started_ms,
                (extract(epoch from ended_at) * 1000)::float8 as ended_ms, details
         from run_history
         where tenant = $1 and started_at >= to_timestamp($2::float8 / 1000) and started_at < to_timestamp($3::float8 / 1000)
           and ($4::text is null or run_id > $4)
         order by run_id limit $5`,
        [tenant, fromMs, toMs, afterRunId ?? null, limit],
      );
      return result.rows.map((r) => ({
        tenant: r.tenant,
        runId: r.run_id,
        kind: r.kind,
        definition: r.definition,
        outcome: r.outcome,
        startedAtMs: Math.round(Number(r.started_ms)),
        endedAtMs: Math.round(Number(r.ended_ms)),
        details: r.details,
      }));
    },

    async runHistoryAggregates(tenant, fromMs, toMs) {
      assertTenant(tenant);
      const result = await pool.query(
        `with runs as (
           select to_char(started_at at time zone 'UTC', 'YYYY-MM-DD') as day, kind, definition, outcome,
                  extract(epoch from (ended_at - started_at)) * 1000 as duration_ms
           from run_history
           where tenant = $1 and started_at >= to_timestamp($2::float8 / 1000) and started_at < to_timestamp($3::float8 / 1000))
         select day, kind, definition, outcome, count(*)::int as n,
                sum(duration_ms)::float8 as total, avg(duration_ms)::float8 as avg, max(duration_ms)::float8 as max,
                (percentile_cont(0.5) within group (order by duration_ms))::float8 as p50
         from runs group by day, kind, definition, outcome
         order by day, kind, definition, outcome limit ${pageRowsMax}`,
        [tenant, fromMs, toMs],
      );
      return result.rows.map((r) => ({
        day: r.day,
        kind: r.kind,
        definition: r.definition,
        outcome: r.outcome,
        count: Number(r.n),
        durationMsTotal: Math.round(Number(r.total)),
        durationMsAvg: Number(r.avg),
        durationMsMax: Math.round(Number(r.max)),
        durationMsP50: Number(r.p50),
      }));
    },

    async stageAudit(tenant, events, marker) {
      assertTenant(tenant);
      if (events.length === 0) return 0;
      if (events.length > stageEventsMax) throw new MemoryError('limit_exceeded', `at most ${stageEventsMax} audit events per call`);
      const source = events[0]!.source;
      for (let i = 0; i < events.length; i++) {
        const e = events[i]!;
        if (e.source !== source) throw new MemoryError('invalid_argument', 'stageAudit takes events of one source per call');
        if (!Number.isSafeInteger(e.sourceSeq) || e.sourceSeq < 1) throw new MemoryError('invalid_argument', `bad source seq ${e.sourceSeq}`);
        if (i > 0 && e.sourceSeq <= events[i - 1]!.sourceSeq) throw new MemoryError('invalid_argument', 'audit events must come in increasing source seq');
      }
      return inTransaction(pool, async (client) => {
        const through = await lockSource(client, tenant, source);
        const fresh = events.filter((e) => e.sourceSeq > through);
        if (fresh.length === 0) return 0;
        if (marker) await stageMarker(client, tenant, marker);
        await insertStaged(client, tenant, source, fresh);
        return fresh.length;
      });
    },

    async stageAuditNext(tenant, source, event) {
      assertTenant(tenant);
      return inTransaction(pool, (client) => stageMarker(client, tenant, { source, event }));
    },

    async auditSourceMark(tenant, family) {
      assertTenant(tenant);
      const result = await pool.query(`${markSql} limit 1`, [tenant, family]);
      return markFromRow(result.rows[0], family);
    },

    async openAuditGeneration(tenant, ended, fromSeq, marker) {
      assertTenant(tenant);
      if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) throw new MemoryError('invalid_argument', `bad first seq ${fromSeq} of a new generation`);
      const { family } = sourceGeneration(ended.source);
      return inTransaction(pool, async (client) => {
        // The tenant row first, as every staging transaction locks it: one restart opens one generation.
        await lockTenant(client, tenant);
        const current = markFromRow((await client.query(`${markSql} limit 1 for update`, [tenant, family])).rows[0], family);
        // Judged on a mark that has moved since (the restart handled, or the generation staged on): open nothing.
        if (current.generation !== ended.generation || current.stagedThrough !== ended.stagedThrough) return current;
        const generation = current.generation + 1;
        const opened: AuditSourceMark = { source: generationSource(family, generation), generation, stagedThrough: fromSeq - 1, lastDigest: null };
        await client.query(
          'insert into audit_sources (tenant, source, family, generation, staged_through) values ($1, $2, $3, $4, $5)',
          [tenant, opened.source, family, generation, opened.stagedThrough],
        );
        await stageMarker(client, tenant, marker);
        return opened;
      });
    },

    async stagedThrough(tenant, source) {
      const result = await pool.query<{ t: string }>(
        'select staged_through::text as t from audit_sources where tenant = $1 and source = $2',
        [tenant, source],
      );
      return result.rows[0] ? Number(result.rows[0].t) : 0;
    },

    async stagedAudit(tenant, { afterSeq = 0, limit }) {
      assertTenant(tenant);
      assertLimit(limit);
      const result = await pool.query(
        `select tenant, seq::text, source, source_seq::text, event, (extract(epoch from staged_at) * 1000)::float8 as staged_ms
         from audit_staging where tenant = $1 and seq > $2 order by audit_staging.seq limit $3`,
        [tenant, afterSeq, limit],
      );
      return result.rows.map((r) => ({
        tenant: r.tenant,
        seq: Number(r.seq),
        source: r.source,
        sourceSeq: Number(r.source_seq),
        event: r.event,
        stagedAtMs: Math.round(Number(r.staged_ms)),
      }));
    },

    async auditBacklog() {
      const result = await pool.query(
        `select tenant, count(*)::int as n, (extract(epoch from min(staged_at)) * 1000)::float8 as oldest
         from audit_staging group by tenant order by tenant`,
      );
      return result.rows.map((r) => ({ tenant: r.tenant, staged: Number(r.n), oldestStagedAtMs: Math.round(Number(r.oldest)) }));
    },

    async claimAuditShipping(tenant, owner, leaseMs) {
      const result = await pool.query(
        `update audit_tenants set ship_owner = $2, ship_lease_until = now() + ($3::float8 * interval '1 millisecond')
         where tenant = $1 and (ship_owner is null or ship_owner = $2 or ship_lease_until < now())`,
        [tenant, owner, leaseMs],
      );
      return result.rowCount === 1;
    },

    async releaseAuditShipping(tenant, owner) {
      await pool.query(
        'update audit_tenants set ship_owner = null, ship_lease_until = null where tenant = $1 and ship_owner = $2',
        [tenant, owner],
      );
    },

    async lastConfirmedAuditBatch(tenant) {
      const result = await pool.query(
        `select ${batchColumns} from audit_batches where tenant = $1 and confirmed_at is not null
         order by audit_batches.batch_seq desc limit 1`,
        [tenant],
      );
      return result.rows[0] ? batchFromRow(result.rows[0]) : undefined;
    },

    async pendingAuditBatch(tenant) {
      const result = await pool.query(
        `select ${batchColumns}, body from audit_batches where tenant = $1 and confirmed_at is null
         order by audit_batches.batch_seq limit 1`,
        [tenant],
      );
      const row = result.rows[0];
      return row ? batchFromRow(row, row.body as Buffer) : undefined;
    },

    async pendingAuditTenants() {
      const result = await pool.query<{ tenant: string }>(
        'select distinct tenant from audit_batches where confirmed_at is null order by tenant',
      );
      return result.rows.map((r) => r.tenant);
    },

    async recordPendingAuditBatch(batch) {
      await pool.query(
        `insert into audit_batches (tenant, batch_seq, first_seq, last_seq, event_count, sha256, prev_sha256, object_key, body)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [batch.tenant, batch.batchSeq, batch.firstSeq, batch.lastSeq, batch.count, batch.sha256, batch.prevSha256, batch.key, batch.body],
      );
    },

    async confirmAuditBatch(tenant, batchSeq, versionId) {
      await inTransaction(pool, async (client) => {
        const updated = await client.query<{ first_seq: string; last_seq: string }>(
          `update audit_batches set version_id = $3, confirmed_at = now(), body = null
           where tenant = $1 and batch_seq = $2 and confirmed_at is null returning first_seq::text, last_seq::text`,
          [tenant, batchSeq, versionId],
        );
        const row = updated.rows[0];
        if (!row) throw new MemoryError('conflict', `audit batch ${tenant}/${batchSeq} is not pending`);
        await client.query('delete from audit_staging where tenant = $1 and seq between $2 and $3', [tenant, row.first_seq, row.last_seq]);
      });
    },

    async closeAuditStagingHoles(tenant) {
      assertTenant(tenant);
      return inTransaction(pool, async (client) => {
        await lockTenant(client, tenant);
        // Islands of missing seqs between the last batch (shipped or pending) and the next seq.
        const holes = await client.query<{ from_seq: string; to_seq: string }>(
          `with bounds as (
             select coalesce((select max(last_seq) from audit_batches where tenant = $1), 0) + 1 as first,
                    (select next_seq from audit_tenants where tenant = $1) - 1 as last),
           missing as (
             select s from bounds, generate_series(bounds.first, bounds.last) s
             where not exists (select 1 from audit_staging where tenant = $1 and seq = s))
           select min(s)::text as from_seq, max(s)::text as to_seq from (select s, s - row_number() over (order by s) as island from missing) m
           group by island order by 1`,
          [tenant],
        );
        const ranges = holes.rows.map((r) => ({ fromSeq: Number(r.from_seq), toSeq: Number(r.to_seq) }));
        const seqs = ranges.reduce((n, r) => n + r.toSeq - r.fromSeq + 1, 0);
        if (seqs > auditHoleSeqsMax) {
          throw new MemoryError('limit_exceeded', `tenant ${tenant}'s staging misses ${seqs} seqs, more than ${auditHoleSeqsMax}: not filled`, 'a sequence this far ahead was set by hand: look at audit_tenants.next_seq before anything else');
        }
        for (const r of ranges) {
          await client.query(
            `insert into audit_staging (tenant, seq, source, source_seq, event)
             select $1, s, $2, s, json_build_object('lost_seq', s, 'lost_from_seq', $3::int8, 'lost_to_seq', $4::int8,
               'cause', 'removed from staging before it shipped', 'closed_at_ms', $5::int8)
             from generate_series($3::int8, $4::int8) s`,
            [tenant, auditHoleSource, r.fromSeq, r.toSeq, Date.now()],
          );
        }
        return ranges;
      });
    },

    async auditStagingSpans(tenant) {
      // One statement, one snapshot: staging and next_seq move together, as do a batch's
      // confirmation and the removal of its staged rows.
      const result = await pool.query(
        `with shipped as (
           select tenant, max(last_seq) as through from audit_batches
           where confirmed_at is not null and ($1::text is null or tenant = $1) group by tenant),
         staged as (
           select tenant, count(*) as n, min(seq) as first, max(seq) as last from audit_staging
           where ($1::text is null or tenant = $1) group by tenant)
         select t.tenant, t.next_seq::text as next_seq, coalesce(shipped.through, 0)::text as through,
                coalesce(staged.n, 0)::text as n, staged.first::text as first, staged.last::text as last
         from audit_tenants t left join shipped using (tenant) left join staged using (tenant)
         where ($1::text is null or t.tenant = $1) order by t.tenant`,
        [tenant ?? null],
      );
      return result.rows.map((r) => ({
        tenant: r.tenant,
        nextSeq: Number(r.next_seq),
        shippedThroughSeq: Number(r.through),
        staged: Number(r.n),
        ...(r.first !== null && { stagedFirstSeq: Number(r.first), stagedLastSeq: Number(r.last) }),
      }));
    },

    async auditBatches(tenant) {
      const result = await pool.query(
        `select ${batchColumns} from audit_batches where ($1::text is null or tenant = $1) order by audit_batches.tenant, audit_batches.batch_seq`,
        [tenant ?? null],
      );
      return result.rows.map((r) => batchFromRow(r));
    },

    async close() {
      if (closed) return;
      closed = true;
      await closeAll();
    },
  };
}

/**
 * Deletes the oldest rows (at most `limit`) of `table` whose `since` time is set and more than
 * `retentionMs` ago by the database's clock (a partial index on `since` finds them); returns how many.
 */
async function deleteAgedRows(
  pool: pg.Pool,
  of: { readonly table: 'kc_event_landing' | 'kc_organizations'; readonly key: string; readonly since: string },
  retentionMs: number,
  limit: number,
): Promise<number> {
  assertLimit(limit);
  if (!Number.isSafeInteger(retentionMs) || retentionMs < 0) throw new MemoryError('invalid_argument', `retentionMs must be a whole number of ms >= 0 (got ${retentionMs})`);
  const result = await pool.query(
    `delete from ${of.table} where ${of.key} in (
       select ${of.key} from ${of.table}
       where ${of.since} is not null and ${of.since} < now() - $1::bigint * interval '1 millisecond'
       order by ${of.since} limit $2)`,
    [retentionMs, limit],
  );
  return result.rowCount ?? 0;
}

/** A family's marks, newest generation first. */
const markSql = `select source, generation, staged_through::text as t, last_digest from audit_sources
  where tenant = $1 and family = $2 order by audit_sources.generation desc`;

function markFromRow(row: Record<string, unknown> | undefined, family: string): AuditSourceMark {
  if (!row) return { source: family, generation: 1, stagedThrough: 0, lastDigest: null };
  return { source: String(row.source), generation: Number(row.generation), stagedThrough: Number(row.t), lastDigest: row.last_digest === null ? null : String(row.last_digest) };
}

/**
 * Locks (creating if needed) the tenant's chain row. Every staging transaction takes it first,
 * so they serialise per tenant and the source rows after it are locked in no conflicting order.
 */
async function lockTenant(client: pg.PoolClient, tenant: string): Promise<void> {
  const tenantLocked = await client.query('select 1 from audit_tenants where tenant = $1 for update', [tenant]);
  if (tenantLocked.rowCount === 0) {
    await client.query('insert into audit_tenants (tenant) values ($1) on conflict (tenant) do nothing', [tenant]);
    await client.query('select 1 from audit_tenants where tenant = $1 for update', [tenant]);
  }
}

/**
 * Locks (creating if needed) the tenant's chain row and the source's mark; returns the mark.
 * The rows exist after a tenant's first staging: lock first, create only when missing (two
 * round trips in the steady state, not four; staging runs on every drain).
 */
async function lockSource(client: pg.PoolClient, tenant: string, source: string): Promise<number> {
  await lockTenant(client, tenant);
  const sourceMarkSql = 'select staged_through::text as t from audit_sources where tenant = $1 and source = $2 for update';
  let mark = await client.query<{ t: string }>(sourceMarkSql, [tenant, source]);
  if (mark.rowCount === 0) {
    const { family, generation } = sourceGeneration(source);
    // Only openAuditGeneration opens a later generation: staging into one it never opened is a bug.
    if (generation !== 1) throw new Error(`audit source ${source} was never opened`);
    await client.query('insert into audit_sources (tenant, source, family) values ($1, $2, $3) on conflict do nothing', [tenant, source, family]);
    mark = await client.query<{ t: string }>(sourceMarkSql, [tenant, source]);
  }
  return Number(mark.rows[0]!.t);
}

/** Stages `marker` at its source's next seq (the caller's transaction); returns that seq. */
async function stageMarker(client: pg.PoolClient, tenant: string, marker: AuditMarker): Promise<number> {
  const through = await lockSource(client, tenant, marker.source);
  await insertStaged(client, tenant, marker.source, [{ source: marker.source, sourceSeq: through + 1, event: marker.event }]);
  return through + 1;
}

/** Assigns the next chain sequence numbers (gapless: the tenant row is locked) and inserts. */
async function insertStaged(client: pg.PoolClient, tenant: string, source: string, events: readonly AuditEventInput[]): Promise<void> {
  const next = await client.query<{ n: string }>(
    'update audit_tenants set next_seq = next_seq + $2 where tenant = $1 returning (next_seq - $2)::text as n',
    [tenant, events.length],
  );
  const firstSeq = Number(next.rows[0]!.n);
  // Events travel as JSON text and are cast to json (kept verbatim), never through jsonb.
  await client.query(
    `insert into audit_staging (tenant, seq, source, source_seq, event)
     select $1, $2::int8 + x.ord - 1, $3, x.source_seq, x.event::json
     from unnest($4::int8[], $5::text[]) with ordinality as x(source_seq, event, ord)`,
    [tenant, firstSeq, source, events.map((e) => e.sourceSeq), events.map((e) => JSON.stringify(e.event))],
  );
  const last = events[events.length - 1]!;
  await client.query('update audit_sources set staged_through = $3, last_digest = $4 where tenant = $1 and source = $2', [
    tenant,
    source,
    last.sourceSeq,
    last.digest ?? null,
  ]);
}
