/**
 * `audit verify` compares each tenant store's access log with the trail (S3 + staging): real
 * stores in a data directory, real Postgres, real Ceph RGW, the CLI as an operator runs it. The
 * chain alone proves whole after someone with Postgres access removes the newest staged events
 * and lowers the marks to match; the store still holds those rows and names them. A store whose
 * history restarted is compared with its generation of the access-log source.
 */
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { AuditBucket } from '../../storage/audit/audit-bucket.js';
import { shipAudit } from '../../storage/audit/shipper.js';
import { stageAccessLog } from '../../storage/control/audit-staging.js';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { markControlPending } from '../../server/control/control-pending.js';
import { recordKnownTenant } from '../../server/tenants/known-tenants.js';
import { auditCliEnv } from '../support/audit-cli-env.js';
import { freshPostgresDatabase } from '../support/services.js';
import { runProcess, type ProcessOutcome } from '../support/run-process.js';
import { cliNodeArgs } from '../support/cli-entry.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let control: ControlPlane;
let drop: () => Promise<void>;
let bucket: AuditBucket;
let env: Record<string, string>;
let sql: pg.Client;
let dataDir: string;

interface StoreFigures {
  tenant: string;
  source: string;
  rowsHeld: number;
  rowsChecked: number;
  checkedFromSeq: number | null;
  stagedThroughSeq: number;
  pendingRows: number;
  pendingFromSeq?: number;
  openByPid: number | null;
  workWaiting: boolean;
}
interface Verified {
  ok: boolean;
  stores?: StoreFigures[];
  problems: Array<{ kind: string; tenant: string; detail: string }>;
}

function cli(args: string[]): Promise<ProcessOutcome> {
  return runProcess(process.execPath, [...cliNodeArgs, ...args], { cwd: root, env: { ...process.env, ...env } });
}

async function verify(tenant: string, ...more: string[]): Promise<{ code: number | null; report: Verified; stderr: string }> {
  const result = await cli(['audit', 'verify', '--tenant', tenant, '--data-dir', dataDir, '--json', ...more]);
  return { code: result.code, report: JSON.parse(result.stdout) as Verified, stderr: result.stderr };
}

/** `count` access-log rows appended as the server appends them (one batch), their target naming the history they belong to. */
async function appendRows(store: Store, tenant: string, count: number, target = 'object_put'): Promise<void> {
  const entries = Array.from({ length: count }, (_, i) => ({ subject: 'alice', action: 'tools/call', target, offset: i, outcome: 'ok' }));
  await store.call('access_log_append', { entries }, systemCaller(tenant, 'access-log'));
}

const storeDir = (tenant: string) => join(dataDir, 'tenants', tenant);

/**
 * The store of `tenant`, left open: its first `shipped` access-log rows in S3, the next `staged`
 * in staging only, the last `unstaged` in the store alone.
 */
async function storeWithTrail(tenant: string, rows: { shipped?: number; staged?: number; unstaged?: number }, target?: string): Promise<Store> {
  const store = await Store.open({ dir: storeDir(tenant), module: memoryModule });
  if (rows.shipped) {
    await appendRows(store, tenant, rows.shipped, target);
    await stageAccessLog(control, tenant, store);
    await shipAudit(control, bucket, { retentionDays: 1, force: true, tenant });
  }
  if (rows.staged) {
    await appendRows(store, tenant, rows.staged, target);
    await stageAccessLog(control, tenant, store);
  }
  if (rows.unstaged) await appendRows(store, tenant, rows.unstaged, target);
  return store;
}

/** A tenant whose first store shipped 30 access-log rows and was then deleted, as `tenants delete` leaves it. */
async function deletedAfter30(tenant: string): Promise<void> {
  await (await storeWithTrail(tenant, { shipped: 30 }, 'first-life')).close();
  await rm(storeDir(tenant), { recursive: true });
}

beforeAll(async () => {
  const db = await freshPostgresDatabase('auditxc');
  drop = db.drop;
  control = await openControlPlane({ databaseUrl: db.url });
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  ({ bucket, env } = await auditCliEnv(db.url, 'xc'));
  dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-audit-xc-'));
}, 60_000);

afterAll(async () => {
  await sql?.end();
  await control?.close();
  await drop?.();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('a clean pipeline verifies whole with the store cross-check, saying how many rows were checked and from which seq', async () => {
  const tenant = 'xc-clean';
  await (await storeWithTrail(tenant, { shipped: 30, staged: 10 })).close();

  const { code, report, stderr } = await verify(tenant);
  expect(code, stderr).toBe(0);
  expect(report.ok).toBe(true);
  expect(report.stores).toEqual([expect.objectContaining({ tenant, rowsHeld: 40, rowsChecked: 40, checkedFromSeq: 1, stagedThroughSeq: 40, pendingRows: 0, openByPid: null })]);
  const text = await cli(['audit', 'verify', '--tenant', tenant, '--data-dir', dataDir]);
  expect(text.stdout).toContain(`store ${tenant}: 40 access-log rows checked against S3 and staging, staged through seq 40; store holds seq 1..40`);
  expect(text.stdout).toContain('audit verified: chain whole');
}, 60_000);

test('the newest staged events deleted in Postgres with next_seq and staged_through lowered to match: the chain proves whole, the store names the missing events', async () => {
  const tenant = 'xc-cut';
  await (await storeWithTrail(tenant, { shipped: 20, staged: 10 })).close();
  // Someone with write access to Postgres removes seq 26..30 and leaves no trace in the marks.
  await sql.query('delete from audit_staging where tenant = $1 and seq >= 26', [tenant]);
  await sql.query('update audit_tenants set next_seq = 26 where tenant = $1', [tenant]);
  await sql.query(`update audit_sources set staged_through = 25 where tenant = $1 and source = 'access_log'`, [tenant]);

  const chainOnly = await verify(tenant, '--no-stores');
  expect(chainOnly.code, chainOnly.stderr).toBe(0);
  expect(chainOnly.report).toMatchObject({ ok: true, problems: [] });

  const crossChecked = await verify(tenant);
  expect(crossChecked.code, crossChecked.stderr).toBe(1);
  expect(crossChecked.report.problems).toEqual([
    expect.objectContaining({ kind: 'missing_event', tenant, detail: expect.stringContaining('access-log seq 26..30 (5 events) of the store is not staged (staged through seq 25)') }),
  ]);
}, 60_000);

test('a staged event whose JSON was altered in Postgres is reported altered, naming its seq', async () => {
  const tenant = 'xc-alter';
  await (await storeWithTrail(tenant, { staged: 10 })).close();
  await sql.query(`update audit_staging set event = (event::jsonb || '{"outcome":"forbidden"}')::json where tenant = $1 and source_seq = 7`, [tenant]);

  const chainOnly = await verify(tenant, '--no-stores');
  expect(chainOnly.code, chainOnly.stderr).toBe(0);
  const crossChecked = await verify(tenant);
  expect(crossChecked.code, crossChecked.stderr).toBe(1);
  expect(crossChecked.report.problems).toEqual([
    expect.objectContaining({ kind: 'altered', tenant, detail: expect.stringMatching(/^access-log seq 7 \(staged\) is .*"outcome":"forbidden".*, the store's row is .*"outcome":"ok"/) }),
  ]);
}, 60_000);

test('rows not staged yet are pending, not problems: a control-pending mark, or a live writer holding the store', async () => {
  const tenant = 'xc-pending';
  // The last 5 not staged: the server that holds the store stages them soon.
  const store = await storeWithTrail(tenant, { staged: 10, unstaged: 5 });

  // The store is held by this process (a live writer): read all the same, its fresh rows in flight.
  const live = await verify(tenant);
  expect(live.code, live.stderr).toBe(0);
  expect(live.report.stores).toEqual([expect.objectContaining({ tenant, rowsHeld: 15, rowsChecked: 10, pendingRows: 5, pendingFromSeq: 11, openByPid: process.pid, workWaiting: false })]);

  // Closed, with the mark a stdio server (embedded database) leaves: its rows wait for `serve --http`.
  await store.close();
  await markControlPending(dataDir, tenant);
  const marked = await verify(tenant);
  expect(marked.code, marked.stderr).toBe(0);
  expect(marked.report.stores).toEqual([expect.objectContaining({ tenant, rowsChecked: 10, pendingRows: 5, pendingFromSeq: 11, openByPid: null, workWaiting: true })]);
}, 60_000);

test('rows that should have been staged are missing: a closed store with no control-pending mark, and a tenant the control plane never heard of', async () => {
  const stale = 'xc-stale';
  await (await storeWithTrail(stale, { staged: 4, unstaged: 2 })).close();
  const overdue = await verify(stale);
  expect(overdue.code, overdue.stderr).toBe(1);
  expect(overdue.report.problems).toEqual([expect.objectContaining({ kind: 'missing_event', tenant: stale, detail: expect.stringContaining('access-log seq 5..6 (2 events) of the store is not staged') })]);

  const unknown = 'xc-unknown';
  await (await storeWithTrail(unknown, { unstaged: 3 })).close();
  const unstaged = await verify(unknown);
  expect(unstaged.code, unstaged.stderr).toBe(1);
  expect(unstaged.report.problems).toEqual([expect.objectContaining({ kind: 'missing_event', tenant: unknown, detail: expect.stringContaining('access-log seq 1..3 (3 events) of the store was never staged') })]);
}, 60_000);

test('a tenant store deleted and made anew, its new history staged and shipped: verified whole against its generation access_log#2', async () => {
  const tenant = 'xc-remade';
  await deletedAfter30(tenant);
  await (await storeWithTrail(tenant, { shipped: 10 }, 'second-life')).close();

  const { code, report, stderr } = await verify(tenant);
  expect(report.problems).toEqual([]);
  expect(code, stderr).toBe(0);
  expect(report.stores).toEqual([expect.objectContaining({ tenant, source: 'access_log#2', rowsHeld: 10, rowsChecked: 10, checkedFromSeq: 1, stagedThroughSeq: 10, pendingRows: 0 })]);
  const text = await cli(['audit', 'verify', '--tenant', tenant, '--data-dir', dataDir]);
  expect(text.stdout).toContain(`store ${tenant}: 10 access-log rows checked against S3 and staging, staged through seq 10 of access_log#2 (its history restarted); store holds seq 1..10`);
  expect(text.stdout).toContain('audit verified: chain whole');
}, 60_000);

test('an older copy of the store restored that went on differently, its new generation partly shipped and partly staged: verified whole', async () => {
  const tenant = 'xc-restored';
  await (await storeWithTrail(tenant, { staged: 20 }, 'common')).close();
  await cp(storeDir(tenant), `${storeDir(tenant)}.backup`, { recursive: true });
  await (await storeWithTrail(tenant, { shipped: 10 }, 'lost-future')).close();
  await rm(storeDir(tenant), { recursive: true });
  await cp(`${storeDir(tenant)}.backup`, storeDir(tenant), { recursive: true });
  await rm(`${storeDir(tenant)}.backup`, { recursive: true });
  await (await storeWithTrail(tenant, { shipped: 8, staged: 2 }, 'diverged')).close();

  const { code, report, stderr } = await verify(tenant);
  expect(report.problems).toEqual([]);
  expect(code, stderr).toBe(0);
  expect(report.stores).toEqual([expect.objectContaining({ tenant, source: 'access_log#2', rowsHeld: 30, rowsChecked: 30, stagedThroughSeq: 30 })]);
}, 60_000);

test('a restarted tenant whose new rows are not in the trail is named: its new generation cut in Postgres, or a restart no stager has seen', async () => {
  const cut = 'xc-restart-cut';
  await deletedAfter30(cut);
  await (await storeWithTrail(cut, { staged: 10 }, 'second-life')).close();
  // Someone with write access to Postgres removes the new generation's last 5 rows and lowers the marks to match.
  await sql.query(`delete from audit_staging where tenant = $1 and source = 'access_log#2' and source_seq > 5`, [cut]);
  await sql.query('update audit_tenants set next_seq = next_seq - 5 where tenant = $1', [cut]);
  await sql.query(`update audit_sources set staged_through = 5 where tenant = $1 and source = 'access_log#2'`, [cut]);
  const cutReport = await verify(cut);
  expect(cutReport.code, cutReport.stderr).toBe(1);
  expect(cutReport.report.problems).toEqual([
    expect.objectContaining({ kind: 'missing_event', tenant: cut, detail: expect.stringContaining('access_log#2 seq 6..10 (5 events) of the store is not staged (staged through seq 5)') }),
  ]);

  // Made anew and closed before any stager saw it: compared with the generation that ended.
  const unseen = 'xc-restart-unseen';
  await deletedAfter30(unseen);
  await (await storeWithTrail(unseen, { unstaged: 1 }, 'second-life')).close();
  const unseenReport = await verify(unseen);
  expect(unseenReport.code, unseenReport.stderr).toBe(1);
  expect(unseenReport.report.problems.map((p) => p.kind)).toEqual(['altered', 'store_behind']);
  expect(unseenReport.report.problems[1]!.detail).toContain('the next to stage this tenant opens the next generation of access_log');
}, 60_000);

test('a known tenant whose store vanished (directory removed, or emptied) is store_vanished with the way back, not a chain that verifies whole; forgotten, its chain verifies alone', async () => {
  const gone = 'xc-vanished';
  await (await storeWithTrail(gone, { shipped: 6, unstaged: 2 })).close();
  await recordKnownTenant(dataDir, gone);
  await rm(storeDir(gone), { recursive: true });
  const missing = await verify(gone);
  expect(missing.code, missing.stderr).toBe(1);
  expect(missing.report.problems).toEqual([
    expect.objectContaining({ kind: 'store_vanished', tenant: gone, detail: expect.stringMatching(/directory missing: its access-log rows not staged yet are in no trail.*restore BACKUP_DIR xc-vanished --data-dir \S+.*tenants forget xc-vanished --yes --data-dir \S+/) }),
  ]);
  const text = await cli(['audit', 'verify', '--tenant', gone, '--data-dir', dataDir]);
  expect(text.code).toBe(1);
  expect(text.stdout).toContain(`PROBLEM store_vanished tenant=${gone}: the store of known tenant ${gone} has vanished`);

  // Emptied in place: read-only, it would open as a new store with no row.
  const emptied = 'xc-emptied';
  await (await storeWithTrail(emptied, { shipped: 6 })).close();
  await recordKnownTenant(dataDir, emptied);
  await rm(storeDir(emptied), { recursive: true });
  await mkdir(storeDir(emptied));
  const empty = await verify(emptied);
  expect(empty.code, empty.stderr).toBe(1);
  expect(empty.report.problems).toEqual([expect.objectContaining({ kind: 'store_vanished', tenant: emptied, detail: expect.stringContaining('no log or snapshot in it') })]);

  // The operator retires it: nothing left to compare, the chain verifies alone.
  const forgot = await cli(['tenants', 'forget', gone, '--yes', '--data-dir', dataDir]);
  expect(forgot.code, forgot.stderr).toBe(0);
  const after = await verify(gone);
  expect(after.report.problems).toEqual([]);
  expect(after.code, after.stderr).toBe(0);
}, 60_000);
