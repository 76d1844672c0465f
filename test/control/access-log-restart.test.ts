/**
 * A tenant store whose access log starts its history again (deleted and made anew for the same
 * tenant id, an older copy restored) numbers its rows from below the staged mark. The stager sees
 * it and stages the new history under the source's next generation after an `audit_restart`
 * event, once, across a crash; a store that only aged rows out is no restart. Real stores, real
 * Postgres.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { accessLogRowDigest, stageAccessLog } from '../../storage/control/audit-staging.js';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { applyMigrations } from '../../storage/control/migrations.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import { Store } from '../../storage/store.js';
import { accessLogAppendKeeping, accessLogTable } from '../../tools/access-log.js';
import { freshPostgresDatabase } from '../support/services.js';

let control: ControlPlane;
let drop: () => Promise<void>;
let sql: pg.Client;
let dataDir: string;

beforeAll(async () => {
  const db = await freshPostgresDatabase('restart');
  drop = db.drop;
  control = await openControlPlane({ databaseUrl: db.url });
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-restart-'));
}, 60_000);

afterAll(async () => {
  await sql?.end();
  await control?.close();
  await drop?.();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** The tenant's store (its directory under dataDir, or `dir`), keeping its newest `rowsMax` access-log rows. */
function openStore(tenant: string, rowsMax = 100_000, dir = join(dataDir, tenant)): Promise<Store> {
  return Store.open({ dir, module: { tables: [accessLogTable], reducers: [accessLogAppendKeeping(rowsMax)] } });
}

/** `count` access-log rows appended as the server appends them, their target naming the history they belong to. */
async function appendRows(store: Store, tenant: string, count: number, target: string): Promise<void> {
  const entries = Array.from({ length: count }, () => ({ subject: 'alice', action: 'tools/call', target, outcome: 'ok' }));
  await store.call('access_log_append', { entries }, systemCaller(tenant, 'access-log'));
}

async function staged(tenant: string) {
  return (await control.stagedAudit(tenant, { limit: 1_000 })).map((e) => ({ seq: e.seq, source: e.source, sourceSeq: e.sourceSeq, event: e.event as Record<string, unknown> }));
}

async function marks(tenant: string) {
  const result = await sql.query(
    'select source, family, generation, staged_through::int as through from audit_sources where tenant = $1 order by family, generation',
    [tenant],
  );
  return result.rows;
}

/** The staged events of `source`, as [source seq, target]. */
const rowsOf = (events: Awaited<ReturnType<typeof staged>>, source: string) =>
  events.filter((e) => e.source === source).map((e) => [e.sourceSeq, e.event.target]);

const range = (from: number, to: number, target: string) => Array.from({ length: to - from + 1 }, (_, i) => [from + i, target]);

test('a store deleted and made anew for the same tenant: its 10 new rows are staged under access_log#2, after an audit_restart event', async () => {
  const tenant = 'remade';
  const first = await openStore(tenant);
  await appendRows(first, tenant, 30, 'first-life');
  expect(await stageAccessLog(control, tenant, first)).toBe(30);
  await first.close();
  await rm(join(dataDir, tenant), { recursive: true }); // as `tenants delete` / `forget` leave it

  const second = await openStore(tenant);
  await appendRows(second, tenant, 10, 'second-life');
  expect(await stageAccessLog(control, tenant, second), 'every row of the new history, none skipped below the old mark').toBe(10);
  const events = await staged(tenant);
  expect(events[30]).toEqual({
    seq: 31, source: 'audit_restart', sourceSeq: 1,
    event: { source: 'access_log', staged_through_seq: 30, cause: 'store_ends_below_mark', next_source: 'access_log#2', next_from_seq: 1, store_newest_seq: 10 },
  });
  expect(rowsOf(events, 'access_log#2')).toEqual(range(1, 10, 'second-life'));
  expect(events.map((e) => e.seq), 'one gapless chain across the generations').toEqual(range(1, 41, '').map(([seq]) => seq));

  // The new generation goes on like the first: nothing twice, the next rows after it.
  expect(await stageAccessLog(control, tenant, second)).toBe(0);
  await appendRows(second, tenant, 2, 'second-life');
  expect(await stageAccessLog(control, tenant, second)).toBe(2);
  await second.close();
  expect(await marks(tenant)).toEqual([
    { source: 'access_log', family: 'access_log', generation: 1, through: 30 },
    { source: 'access_log#2', family: 'access_log', generation: 2, through: 12 },
    { source: 'audit_restart', family: 'audit_restart', generation: 1, through: 1 },
  ]);
}, 60_000);

test('an older copy of the store restored: the rows where its history diverges are staged, whether it ends below the staged mark or has grown past it', async () => {
  for (const [tenant, grownTo, cause] of [['restored-short', 25, 'store_ends_below_mark'], ['restored-grown', 35, 'row_at_mark_differs']] as const) {
    const dir = join(dataDir, tenant);
    const store = await openStore(tenant);
    await appendRows(store, tenant, 20, 'common');
    await store.close();
    await cp(dir, `${dir}.backup`, { recursive: true }); // a backup of the closed store at seq 20
    const before = await openStore(tenant);
    await appendRows(before, tenant, 10, 'lost-future');
    expect(await stageAccessLog(control, tenant, before)).toBe(30);
    await before.close();

    await rm(dir, { recursive: true });
    await cp(`${dir}.backup`, dir, { recursive: true }); // the restore
    const restored = await openStore(tenant);
    // The restored history goes on from seq 21, differently; `restored-grown` passes the mark
    // before anything stages it (the control plane was away meanwhile).
    await appendRows(restored, tenant, grownTo - 20, 'diverged');
    expect(await stageAccessLog(control, tenant, restored)).toBe(grownTo);
    await restored.close();

    const events = await staged(tenant);
    expect(events.find((e) => e.source === 'audit_restart')?.event).toMatchObject({ source: 'access_log', staged_through_seq: 30, cause, next_source: 'access_log#2', next_from_seq: 1 });
    expect(rowsOf(events, 'access_log#2'), 'the restored store whole under the new generation').toEqual([...range(1, 20, 'common'), ...range(21, grownTo, 'diverged')]);
    expect(rowsOf(events, 'access_log'), 'the ended generation stays as it was').toEqual([...range(1, 20, 'common'), ...range(21, 30, 'lost-future')]);
  }
}, 60_000);

test('a store whose oldest rows aged out (its newest above the mark) is no restart: its rows go on under access_log, after one audit_gap for those never staged, across a crash', async () => {
  const tenant = 'aged';
  const store = await openStore(tenant, 10);
  await appendRows(store, tenant, 8, 'early');
  expect(await stageAccessLog(control, tenant, store)).toBe(8);
  // 12 more: the store keeps seq 11..20, so the staged mark's row (8) and rows 9..10 aged out.
  await appendRows(store, tenant, 12, 'late');
  // A crash as the rows after the gap are staged: the gap is staged with them or not at all.
  const crashing: ControlPlane = { ...control, stageAudit: () => Promise.reject(new Error('SIGKILL staging the rows after the gap')) };
  await expect(stageAccessLog(crashing, tenant, store)).rejects.toThrow('SIGKILL staging the rows after the gap');
  expect(await stageAccessLog(control, tenant, store)).toBe(10);
  await store.close();

  const events = await staged(tenant);
  expect(events.some((e) => e.source === 'audit_restart' || e.source.includes('#'))).toBe(false);
  expect(events.filter((e) => e.source === 'audit_gap'), 'one gap, not one per attempt').toEqual([
    { seq: 9, source: 'audit_gap', sourceSeq: 1, event: { source: 'access_log', lost_from_seq: 9, lost_to_seq: 10 } },
  ]);
  expect(rowsOf(events, 'access_log')).toEqual([...range(1, 8, 'early'), ...range(11, 20, 'late')]);
}, 60_000);

test('a crash after the new generation opened and before its rows were staged leaves one generation; two stagers judging the same restart open one too', async () => {
  const tenant = 'crashed';
  const first = await openStore(tenant);
  await appendRows(first, tenant, 30, 'first-life');
  await stageAccessLog(control, tenant, first);
  await first.close();
  await rm(join(dataDir, tenant), { recursive: true });
  const second = await openStore(tenant);
  await appendRows(second, tenant, 10, 'second-life');

  // The process dies right after the transaction that opened access_log#2 committed.
  const crashing: ControlPlane = { ...control, stageAudit: () => Promise.reject(new Error('SIGKILL after the generation opened')) };
  await expect(stageAccessLog(crashing, tenant, second)).rejects.toThrow('SIGKILL after the generation opened');
  expect((await marks(tenant)).map((m) => `${m.source}:${m.through}`)).toEqual(['access_log:30', 'access_log#2:0', 'audit_restart:1']);

  // Restarted, it stages the rows under the generation already open, and opens no other.
  expect(await stageAccessLog(control, tenant, second)).toBe(10);
  expect(await stageAccessLog(control, tenant, second)).toBe(0);
  expect((await marks(tenant)).map((m) => `${m.source}:${m.through}`)).toEqual(['access_log:30', 'access_log#2:10', 'audit_restart:1']);
  await second.close();

  // Two stagers that judged the same restart at once (a third life of the store): one opens it.
  await rm(join(dataDir, tenant), { recursive: true });
  const third = await openStore(tenant);
  await appendRows(third, tenant, 4, 'third-life');
  const both = await Promise.all([stageAccessLog(control, tenant, third), stageAccessLog(control, tenant, third)]);
  expect(both.reduce((a, b) => a + b), 'each row staged once').toBe(4);
  await third.close();
  expect((await marks(tenant)).map((m) => `${m.source}:${m.through}`)).toEqual(['access_log:30', 'access_log#2:10', 'access_log#3:4', 'audit_restart:2']);
  const events = await staged(tenant);
  expect(events.filter((e) => e.source === 'audit_restart').map((e) => e.event.next_source)).toEqual(['access_log#2', 'access_log#3']);
  expect(rowsOf(events, 'access_log#3')).toEqual(range(1, 4, 'third-life'));

  // The opening step alone, given a mark that has moved on: it opens nothing.
  const stale = { source: 'access_log#2', generation: 2, stagedThrough: 10, lastDigest: null };
  expect(await control.openAuditGeneration(tenant, stale, 1, { source: 'audit_restart', event: {} })).toMatchObject({ source: 'access_log#3', stagedThrough: 4 });
  expect((await marks(tenant)).length).toBe(4);
}, 60_000);

test('migration 6 keeps every mark as generation 1 without a digest: a store ending below it is still seen as restarted', async () => {
  const tenant = 'premigration';
  // A database as migration 5 left it, with a mark staged then (its own: the others' marks stay as they are).
  const db = await freshPostgresDatabase('premigration');
  const admin = new pg.Client({ connectionString: db.url });
  let old: ControlPlane | undefined;
  await admin.connect();
  try {
    await applyMigrations(db.url);
    await admin.query('drop index audit_sources_generation');
    await admin.query('alter table audit_sources drop column family, drop column generation, drop column last_digest');
    await admin.query('delete from control_migrations where version = 6');
    await admin.query('insert into audit_tenants (tenant, next_seq) values ($1, 31)', [tenant]);
    await admin.query(`insert into audit_sources (tenant, source, staged_through) values ($1, 'access_log', 30)`, [tenant]);
    old = await openControlPlane({ databaseUrl: db.url });
    expect(old.migrated).toEqual([6]);
    expect(await old.auditSourceMark(tenant, 'access_log')).toEqual({ source: 'access_log', generation: 1, stagedThrough: 30, lastDigest: null });

    const store = await openStore(tenant);
    await appendRows(store, tenant, 30, 'unknown-life');
    // Row 30 is there, and without a digest nothing says it is another row: judged by seqs alone.
    expect(await stageAccessLog(old, tenant, store)).toBe(0);
    await appendRows(store, tenant, 1, 'unknown-life');
    expect(await stageAccessLog(old, tenant, store)).toBe(1);
    const row31 = await store.read((view) => view.table('access_log').get([31])!);
    expect((await old.auditSourceMark(tenant, 'access_log')).lastDigest, 'the digest kept from the first row staged since').toBe(accessLogRowDigest(row31));
    await store.close();

    await rm(join(dataDir, tenant), { recursive: true });
    const remade = await openStore(tenant);
    await appendRows(remade, tenant, 3, 'new-life');
    expect(await stageAccessLog(old, tenant, remade)).toBe(3);
    await remade.close();
    expect(rowsOf((await old.stagedAudit(tenant, { limit: 100 })).map((e) => ({ ...e, event: e.event as Record<string, unknown> })), 'access_log#2')).toEqual(range(1, 3, 'new-life'));
  } finally {
    await old?.close();
    await admin.end();
    await db.drop();
  }
}, 60_000);
