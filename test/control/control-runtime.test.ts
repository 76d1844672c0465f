/**
 * The control runtime after a restart: work a tenant's store kept for the control plane (a
 * finished session, an access row: Postgres was away when the server stopped) drains once the
 * control plane connects, without waiting for that tenant's next call. A real tenant store under
 * a data dir and a fresh database on the test Postgres.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, expect, test } from 'vitest';
import type { Caller } from '../../storage/changes.js';
import { startControlRuntime, type ControlRuntime, type WithTenant } from '../../server/control/control-runtime.js';
import type { Config } from '../../server/config.js';
import { openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { controlPendingDirName } from '../../server/control/control-pending.js';
import { silentLogger } from '../../server/log.js';
import { hasTenantRecord } from '../../server/tenants/tenant-record-dir.js';
import { freshPostgresDatabase } from '../support/services.js';
import { waitUntil } from '../support/wait-until.js';

const tenant = 'acme';
const caller: Caller = { tenant, subject: 'user-1', roles: ['write'] };
const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

/** A fresh data dir and database, removed after the file. */
async function dataDirAndDatabase(label: string) {
  const dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-control-runtime-'));
  cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
  const db = await freshPostgresDatabase(label);
  cleanup.push(db.drop);
  return { dataDir, db };
}

test('a tenant\'s undrained work from before a restart reaches the control plane without a call of that tenant', async () => {
  const { dataDir, db } = await dataDirAndDatabase('ctlruntime');

  // Before the restart: the tenant worked while nothing drained its store.
  const before = await openTenantMemory(join(dataDir, 'tenants', tenant), tenant);
  const started = await before.store.call<{ session: string }>('session_start', { agent: 'planner', title: 's1' }, caller);
  await before.store.call('session_end', { session: started.result.session, outcome: 'completed' }, caller);
  await before.store.call('access_log_append', { subject: 'user-1', action: 'tools/call', target: 'session_end', outcome: 'ok' }, caller);
  await before.close();

  // After it: no call of the tenant, only the control plane connecting.
  let opened: TenantMemory | undefined;
  cleanup.push(async () => opened?.close());
  const withTenant: WithTenant = async (wanted, fn) => {
    expect(wanted).toBe(tenant);
    opened ??= await openTenantMemory(join(dataDir, 'tenants', tenant), tenant);
    return fn(opened);
  };
  let drainedAtStart: () => void = () => undefined;
  const drained = new Promise<void>((resolve) => (drainedAtStart = resolve));
  const log = pino({ level: 'info' }, {
    write: (line: string) => {
      if (line.includes('tenants drained at start')) drainedAtStart();
    },
  });
  const config = { dataDir, database: { url: db.url }, auditRetentionDays: 1 } as unknown as Config;
  const runtime: ControlRuntime = await startControlRuntime({ config, log, withTenant, tenantsAtStart: async () => [tenant] });
  cleanup.push(() => runtime.close());
  await drained;

  const plane = runtime.control!;
  const history = await plane.runHistory(tenant, { fromMs: 0, toMs: Date.now() + 60_000, limit: 10 });
  expect(history.map((h) => h.runId)).toEqual([started.result.session]);
  expect((await plane.stagedAudit(tenant, { limit: 10 })).length).toBe(1);
});

// The mark was written only at a clean shutdown: a crash while the drain kept failing left the work to the tenant's next call.
test('a tenant whose drain fails is marked durably at once, and unmarked once its drain succeeds', async () => {
  const { dataDir, db } = await dataDirAndDatabase('ctlruntime_fail');
  const memory = await openTenantMemory(join(dataDir, 'tenants', tenant), tenant);
  cleanup.push(() => memory.close());
  await memory.store.call('access_log_append', { subject: 'user-1', action: 'tools/call', target: 'object_put', outcome: 'ok' }, caller);

  let failing = true;
  let failures = 0;
  const withTenant: WithTenant = async (_wanted, fn) => {
    if (failing) {
      failures += 1;
      throw new Error('the control plane went away (simulated)');
    }
    return fn(memory);
  };
  const config = { dataDir, database: { url: db.url }, auditRetentionDays: 1 } as unknown as Config;
  const runtime = await startControlRuntime({ config, log: silentLogger(), withTenant });
  cleanup.push(() => runtime.close());
  await waitUntil('the control plane connected', async () => runtime.control !== undefined);

  runtime.tenantChanged(tenant);
  await waitUntil('the tenant marked while its drain fails', () => hasTenantRecord(dataDir, controlPendingDirName, tenant));
  await waitUntil('the drain retried', async () => failures >= 2);
  failing = false;
  await waitUntil('the access row staged', async () => (await runtime.control!.stagedAudit(tenant, { limit: 10 })).length === 1);
  await waitUntil('the mark removed once drained', async () => !(await hasTenantRecord(dataDir, controlPendingDirName, tenant)));
});

// The mark was written after the tenant's first commit: a crash in between left that work to the tenant's next call.
test('tenantChanging resolves once the tenant\'s control-pending mark is on disk, and at once while it is marked', async () => {
  const { dataDir, db } = await dataDirAndDatabase('ctlruntime_changing');
  const config = { dataDir, database: { url: db.url }, auditRetentionDays: 1 } as unknown as Config;
  const withTenant: WithTenant = async () => {
    throw new Error('no store in this test');
  };
  const runtime = await startControlRuntime({ config, log: silentLogger(), withTenant });
  cleanup.push(() => runtime.close());
  expect(await hasTenantRecord(dataDir, controlPendingDirName, tenant)).toBe(false);
  await runtime.tenantChanging(tenant);
  expect(await hasTenantRecord(dataDir, controlPendingDirName, tenant)).toBe(true);
  await runtime.tenantChanging(tenant);
  expect(await hasTenantRecord(dataDir, controlPendingDirName, tenant)).toBe(true);
});
