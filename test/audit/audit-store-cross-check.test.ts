/**
 * `audit verify` compares each tenant store's access log with the trail (S3 + staging): real
 * stores in a data directory, real Postgres, real Ceph RGW, the CLI as an operator runs it. The
 * chain alone proves whole after someone with Postgres access removes the newest staged events
 * and lowers the marks to match; the store still holds those rows and names them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
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
import { auditCliEnv } from '../support/audit-cli-env.js';
import { freshPostgresDatabase } from '../support/services.js';
import { runProcess, type ProcessOutcome } from '../support/run-process.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let control: ControlPlane;
let drop: () => Promise<void>;
let bucket: AuditBucket;
let env: Record<string, string>;
let sql: pg.Client;
let dataDir: string;

interface StoreFigures {
  tenant: string;
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
  return runProcess(process.execPath, ['--import', 'tsx', join(root, 'server/cli/main.ts'), ...args], { cwd: root, env: { ...process.env, ...env } });
}

async function verify(tenant: string, ...more: string[]): Promise<{ code: number | null; report: Verified; stderr: string }> {
  const result = await cli(['audit', 'verify', '--tenant', tenant, '--data-dir', dataDir, '--json', ...more]);
  return { code: result.code, report: JSON.parse(result.stdout) as Verified, stderr: result.stderr };
}

/** `count` access-log rows appended as the server appends them (one batch). */
async function appendRows(store: Store, tenant: string, count: number): Promise<void> {
  const entries = Array.from({ length: count }, (_, i) => ({ subject: 'alice', action: 'tools/call', target: `object_put`, offset: i, outcome: 'ok' }));
  await store.call('access_log_append', { entries }, systemCaller(tenant, 'access-log'));
}

/**
 * The store of `tenant`, left open: its first `shipped` access-log rows in S3, the next `staged`
 * in staging only, the last `unstaged` in the store alone.
 */
async function storeWithTrail(tenant: string, rows: { shipped?: number; staged?: number; unstaged?: number }): Promise<Store> {
  const store = await Store.open({ dir: join(dataDir, 'tenants', tenant), module: memoryModule });
  if (rows.shipped) {
    await appendRows(store, tenant, rows.shipped);
    await stageAccessLog(control, tenant, store);
    await shipAudit(control, bucket, { retentionDays: 1, force: true, tenant });
  }
  if (rows.staged) {
    await appendRows(store, tenant, rows.staged);
    await stageAccessLog(control, tenant, store);
  }
  if (rows.unstaged) await appendRows(store, tenant, rows.unstaged);
  return store;
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
