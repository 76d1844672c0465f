/**
 * The control plane's promises, the same test body against real Postgres (started by
 * scripts/services/up.sh), against the same Postgres through PgBouncer in transaction mode (as
 * Supabase's pooler is reached: DATABASE_URL through the pooler, DATABASE_DIRECT_URL straight
 * to Postgres for migrations), and against embedded PGlite served through pglite-socket.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane, type ControlPlaneConfig } from '../../storage/control/control-plane.js';
import { applyMigrations, migrations } from '../../storage/control/migrations.js';
import { startEmbeddedPostgres } from '../../storage/control/embedded-postgres.js';
import { parseKeycloakEvent, type KeycloakEvent } from '../../storage/control/keycloak-event.js';
import { projectKeycloakEvents } from '../../storage/control/keycloak-projector.js';
import { drainRunOutbox } from '../../storage/control/run-outbox.js';
import { stageAccessLog, stageServerAudit } from '../../storage/control/audit-staging.js';
import { freshPostgresDatabase, poolerAdmin } from '../support/services.js';
import { pgConnectionString } from '../../storage/control/connection-url.js';
import pg from 'pg';
import { MemoryError } from '../../storage/errors.js';
import { MemoryStoreFake } from './memory-store-fake.js';

interface Backend {
  /** Config for a control plane on this backend's one database (same data each call). */
  config(): ControlPlaneConfig;
  /** Two migrators at once on the still empty database; what each applied. */
  raceMigrations(): Promise<number[][]>;
  cleanup(): Promise<void>;
}

async function postgresBackend(): Promise<Backend> {
  const db = await freshPostgresDatabase('control');
  return {
    config: () => ({ databaseUrl: db.url }),
    raceMigrations: () => Promise.all([applyMigrations(db.url), applyMigrations(db.url)]),
    cleanup: () => db.drop(),
  };
}

/** DATABASE_URL through PgBouncer (transaction pooling); migrations take the direct URL, as openControlPlane does. */
async function poolerBackend(): Promise<Backend> {
  const db = await freshPostgresDatabase('control_pooled');
  return {
    config: () => ({ databaseUrl: db.pooledUrl(), databaseDirectUrl: db.url }),
    raceMigrations: () => Promise.all([applyMigrations(db.url), applyMigrations(db.url)]),
    cleanup: () => db.drop(),
  };
}

async function pgliteBackend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'ioboxx-control-'));
  return {
    config: () => ({ dataDir: dir }),
    async raceMigrations() {
      // The same directory openControlPlane uses, so one (slow) PGlite initdb serves the suite.
      const embedded = await startEmbeddedPostgres(join(dir, 'control-pg'));
      try {
        return await Promise.all([applyMigrations(embedded.url), applyMigrations(embedded.url)]);
      } finally {
        await embedded.close();
      }
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

const backends: Array<[string, () => Promise<Backend>]> = [
  ['postgres', postgresBackend],
  ['postgres through pgbouncer (transaction pooling)', poolerBackend],
  ['pglite', pgliteBackend],
];

function userEvent(id: string, org: string, type = 'LOGIN'): string {
  return JSON.stringify({ id, time: 1_700_000_000_000, type, realmId: 'r', clientId: 'c', userId: 'u1', details: { org_alias: org } });
}

describe('the transaction pooler the control plane is tested through', () => {
  test('keeps no session state: what relies on it fails there, so passing there proves the control plane does not', async () => {
    const config = await poolerAdmin((admin) => admin.query('show config'));
    expect(config.rows.find((r: { key: string }) => r.key === 'pool_mode')).toMatchObject({ value: 'transaction' });
    const db = await freshPostgresDatabase('pooler_session');
    const clients = Array.from({ length: 4 }, () => new pg.Client({ connectionString: db.pooledUrl() }));
    try {
      await Promise.all(clients.map((c) => c.connect()));
      // Four transactions at once: the pool holds four server connections, used in turn from now on.
      await Promise.all(clients.map((c) => c.query('select pg_sleep(0.05)')));
      const one = clients[0]!;
      await one.query('prepare session_bound as select 1 as one');
      const failures: string[] = [];
      for (let i = 0; i < 8; i++) {
        await one.query('execute session_bound').catch((error: Error) => failures.push(error.message));
      }
      expect(failures.length).toBeGreaterThan(0);
      expect(failures[0]).toMatch(/prepared statement "session_bound" does not exist/);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await db.drop();
    }
  });
});

describe.each(backends)('control plane on %s', (name, makeBackend) => {
  const pooled = name.includes('pgbouncer');
  let backend: Backend;
  let control: ControlPlane;
  let raced: number[][];

  beforeAll(async () => {
    backend = await makeBackend();
    raced = await backend.raceMigrations();
    control = await openControlPlane(backend.config());
  });
  afterAll(async () => {
    await control?.close();
    await backend?.cleanup();
  });

  test('two servers migrating the same empty database at once apply each migration once', async () => {
    const all = migrations.map((m) => m.version);
    expect(raced.flat().sort((a, b) => a - b)).toEqual(all);
    expect(raced.some((applied) => applied.length === 0)).toBe(true);
    expect(control.migrated).toEqual([]);
  });

  test('TLS as Supabase is reached: sslmode=require in the URL encrypts the connection', async () => {
    if (control.backend === 'pglite') {
      expect(control.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres\?sslmode=disable$/); // loopback only
      return;
    }
    const url = new URL(backend.config().databaseUrl!);
    url.searchParams.set('sslmode', 'require');
    const client = new pg.Client({ connectionString: pgConnectionString(url.toString()) });
    await client.connect();
    try {
      if (pooled) {
        // TLS ends at the pooler (as at Supabase's): its console shows this client's session encrypted.
        const database = url.pathname.slice(1);
        const clients = await poolerAdmin((admin) => admin.query('show clients'));
        const ours = clients.rows.filter((r: { database: string }) => r.database === database);
        expect(ours.some((r: { tls: string }) => r.tls !== '')).toBe(true);
      } else {
        const result = await client.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
        expect(result.rows[0]).toEqual({ ssl: true });
      }
    } finally {
      await client.end();
    }
    const overTls = await openControlPlane({ databaseUrl: url.toString() });
    expect(await overTls.insertRunHistory({ tenant: 'tls', runId: 'r', kind: 'bpmn', definition: 'd', outcome: 'ok', startedAtMs: 0, endedAtMs: 1, details: {} })).toBe(true);
    await overTls.close();
  });

  test('the database cannot be opened a second time while open (PGlite is one process\'s database)', async () => {
    if (control.backend === 'pglite') {
      await expect(openControlPlane(backend.config())).rejects.toThrow(/is open in process \d+/);
    } else {
      const second = await openControlPlane(backend.config()); // a server beside it: fine on Postgres
      expect(second.migrated).toEqual([]);
      await second.close();
    }
  });

  test('the same Keycloak event landed twice is stored once and projected once, across a restart', async () => {
    const first = await control.landKeycloakEvent(toLanding(parseKeycloakEvent(userEvent('ev-1', 'acme'))));
    const again = await control.landKeycloakEvent(toLanding(parseKeycloakEvent(userEvent('ev-1', 'acme'))));
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ landingId: first.landingId, duplicate: true });
    await control.landKeycloakEvent(toLanding(parseKeycloakEvent(userEvent('ev-2', 'acme', 'REGISTER'))));
    await control.landKeycloakEvent(toLanding(parseKeycloakEvent(userEvent('ev-3', 'globex'))));

    // The tenant side records landing ids in the same transaction as its changes (as the
    // kc_apply_event reducer does): applying a recorded id again changes nothing.
    const applied = new Map<number, string>();
    let effects = 0;
    let crashAfter = 2;
    const apply = async (tenant: string, event: KeycloakEvent, landingId: number) => {
      if (!applied.has(landingId)) {
        applied.set(landingId, `${tenant}:${event.type}`);
        effects++;
      }
      if (--crashAfter === 0) throw new Error('crash after applying, before marking');
    };
    await expect(projectKeycloakEvents(control, apply)).rejects.toThrow('crash after applying');

    // Restart: a new control plane on the same database finishes the work.
    await control.close();
    control = await openControlPlane(backend.config());
    const result = await projectKeycloakEvents(control, apply);
    expect(result.projected).toBe(2); // the crashed one (a no-op now) and the third
    expect(effects).toBe(3);
    expect([...applied.values()].sort()).toEqual(['acme:LOGIN', 'acme:REGISTER', 'globex:LOGIN']);
    expect(await control.pendingKeycloakEvents(10)).toEqual([]);
    expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 0, skipped: 0 });
  });

  test('migration 5 gives users whose events were applied before migration 4 their tenants, as the projector derives them', async () => {
    const land = (event: Record<string, unknown>) => control.landKeycloakEvent(toLanding(parseKeycloakEvent(JSON.stringify({ time: 1, realmId: 'r', ...event }))));
    const membership = (id: string, org: string, user: string) => ({ id, operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: `organizations/${org}/members/${user}` });
    await control.rememberOrganization('org-bf-9', 'bf-globex');
    await land({ id: 'bf-1', type: 'REGISTER', userId: 'u-old', details: { org_alias: 'bf-acme' } });
    await land(membership('bf-2', 'org-bf-9', 'u-old')); // named by id: its alias is the tenant
    await land(membership('bf-3', 'org-bf-unknown', 'u-two')); // an id with no alias learned: the id is
    await land({ id: 'bf-4', type: 'REGISTER', userId: 'u-refused', details: { org_alias: 'bf-refusing' } });
    await land({ id: 'bf-5', type: 'LOGIN', userId: 'u-old', details: {} }); // no organization: no tenant
    const reached: string[] = [];
    const apply = async (tenant: string, event: KeycloakEvent) => {
      if (tenant === 'bf-refusing') throw new MemoryError('invalid_argument', 'refused for good');
      reached.push(`${tenant}:${event.subjectUserId}`);
    };
    await projectKeycloakEvents(control, apply);
    await land({ id: 'bf-6', type: 'REGISTER', userId: 'u-pending', details: { org_alias: 'bf-later' } }); // not applied yet

    // The database as migration 4 left it for users known before it: no tenants recorded.
    const directUrl = backend.config().databaseDirectUrl ?? backend.config().databaseUrl ?? control.url;
    const admin = new pg.Client({ connectionString: pgConnectionString(directUrl) });
    await admin.connect();
    try {
      await admin.query('delete from kc_user_tenants');
      await admin.query('delete from control_migrations where version = 5');
    } finally {
      await admin.end();
    }
    expect(await control.userTenants('u-old')).toEqual([]);
    expect(await applyMigrations(directUrl)).toEqual([5]);
    expect(await control.userTenants('u-old')).toEqual(['bf-acme', 'bf-globex']);
    expect(await control.userTenants('u-two')).toEqual(['org-bf-unknown']);
    expect(await control.userTenants('u-refused'), 'refused for good: never applied there').toEqual([]);
    expect(await control.userTenants('u-pending'), 'not applied yet: the projector records it when it is').toEqual([]);

    // So an event naming no organization now reaches every tenant the user was known in.
    reached.length = 0;
    await land({ id: 'bf-7', type: 'DELETE_ACCOUNT', userId: 'u-old', details: {} });
    await projectKeycloakEvents(control, apply);
    expect(reached).toEqual(['bf-later:u-pending', 'bf-acme:u-old', 'bf-globex:u-old']);
  });

  test('run history takes each outbox row exactly once, even when the remove step crashes', async () => {
    const fake = new MemoryStoreFake();
    const day = Date.UTC(2026, 0, 5, 10);
    const runs = [
      { run_id: 'r1', kind: 'bpmn', definition: 'invoice', outcome: 'completed', started_at_ms: day, ended_at_ms: day + 1_000, details: { steps: 3 } },
      { run_id: 'r2', kind: 'bpmn', definition: 'invoice', outcome: 'completed', started_at_ms: day + 5_000, ended_at_ms: day + 8_000, details: {} },
      { run_id: 'r3', kind: 'bpmn', definition: 'invoice', outcome: 'failed', started_at_ms: day, ended_at_ms: day + 500, details: {} },
      { run_id: 's1', kind: 'session', definition: 'agent', outcome: 'closed', started_at_ms: day + 86_400_000, ended_at_ms: day + 86_460_000, details: {} },
    ];
    for (const r of runs) fake.table('run_outbox').put(r);
    fake.failNextCall = new Error('store call failed');
    await expect(drainRunOutbox(control, 'acme', fake.asStore())).rejects.toThrow('store call failed');
    expect(await drainRunOutbox(control, 'acme', fake.asStore())).toBe(4);
    expect(fake.table('run_outbox').size).toBe(0);
    expect(await drainRunOutbox(control, 'acme', fake.asStore())).toBe(0);

    const history = await control.runHistory('acme', { fromMs: day - 1, toMs: day + 2 * 86_400_000, limit: 100 });
    expect(history.map((h) => h.runId)).toEqual(['r1', 'r2', 'r3', 's1']);
    expect(history[0]).toMatchObject({ kind: 'bpmn', startedAtMs: day, endedAtMs: day + 1_000, details: { steps: 3 } });
    expect(await control.runHistory('globex', { fromMs: 0, toMs: day * 2, limit: 100 })).toEqual([]);

    const aggregates = await control.runHistoryAggregates('acme', day - 1, day + 2 * 86_400_000);
    expect(aggregates).toEqual([
      { day: '2026-01-05', kind: 'bpmn', definition: 'invoice', outcome: 'completed', count: 2, durationMsTotal: 4_000, durationMsAvg: 2_000, durationMsMax: 3_000, durationMsP50: 2_000 },
      { day: '2026-01-05', kind: 'bpmn', definition: 'invoice', outcome: 'failed', count: 1, durationMsTotal: 500, durationMsAvg: 500, durationMsMax: 500, durationMsP50: 500 },
      { day: '2026-01-06', kind: 'session', definition: 'agent', outcome: 'closed', count: 1, durationMsTotal: 60_000, durationMsAvg: 60_000, durationMsMax: 60_000, durationMsP50: 60_000 },
    ]);
  });

  test('audit staging takes every access-log row and server event once, in one gapless tenant sequence', async () => {
    const fake = new MemoryStoreFake();
    const log = fake.table('access_log');
    const entry = (seq: number) => ({ seq, at_ms: 1000 + seq, subject: 'u1', action: 'tools/call', target: 'objects_put', object_ids: ['o1'], offset: seq, outcome: 'ok' });
    for (let seq = 1; seq <= 5; seq++) log.put(entry(seq));
    expect(await stageAccessLog(control, 'audit-t', fake.asStore())).toBe(5);
    expect(await stageAccessLog(control, 'audit-t', fake.asStore())).toBe(0);
    expect(await stageServerAudit(control, { tenant: 'audit-t', atMs: 2000, subject: 'u2', action: 'tools/call', target: 'x', outcome: 'denied', reason: 'forbidden' })).toBe(1);
    for (let seq = 6; seq <= 7; seq++) log.put(entry(seq));
    expect(await stageAccessLog(control, 'audit-t', fake.asStore())).toBe(2);
    // U+0000 is valid in a store string and must survive staging unchanged.
    expect(await control.stageAudit('nul-t', [{ source: 'access_log', sourceSeq: 1, event: { target: 'a\u0000b' } }])).toBe(1);
    expect((await control.stagedAudit('nul-t', { limit: 1 }))[0]!.event).toEqual({ target: 'a\u0000b' });
    // A duplicate delivery of already staged rows is a no-op.
    expect(await control.stageAudit('audit-t', [{ source: 'access_log', sourceSeq: 3, event: entry(3) }])).toBe(0);

    const staged = await control.stagedAudit('audit-t', { limit: 100 });
    expect(staged.map((s) => s.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(staged.map((s) => `${s.source}:${s.sourceSeq}`)).toEqual([
      'access_log:1', 'access_log:2', 'access_log:3', 'access_log:4', 'access_log:5', 'server:1', 'access_log:6', 'access_log:7',
    ]);
    expect(staged[0]!.event).toEqual(entry(1));
    // Rows 8..9 aged out of the log before they were staged: the chain says so in their place.
    log.put(entry(10));
    log.put(entry(11));
    expect(await stageAccessLog(control, 'audit-t', fake.asStore())).toBe(2);
    const after = await control.stagedAudit('audit-t', { afterSeq: 8, limit: 100 });
    expect(after.map((s) => [s.seq, s.source, s.sourceSeq])).toEqual([
      [9, 'audit_gap', 1],
      [10, 'access_log', 10],
      [11, 'access_log', 11],
    ]);
    expect(after[0]!.event).toEqual({ source: 'access_log', lost_from_seq: 8, lost_to_seq: 9 });

    await stageServerAudit(control, { tenant: null, atMs: 1, subject: null, action: 'http', target: '/mcp', outcome: 'denied' });
    expect((await control.stagedAudit('_server', { limit: 10 })).map((s) => s.seq)).toEqual([1]);
  });
});

function toLanding(event: KeycloakEvent) {
  return { dedupKey: event.dedupKey, tenant: event.tenant, kind: event.kind, eventType: event.type, eventTimeMs: event.timeMs, raw: event.raw };
}
