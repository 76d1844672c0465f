/**
 * The control runtime after a restart: work a tenant's store kept for the control plane (a
 * finished session, an access row: Postgres was away when the server stopped) drains once the
 * control plane connects, without waiting for that tenant's next call. A real tenant store under
 * a data dir and a fresh database on the test Postgres.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
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
import { openAuditBucket } from '../../storage/audit/audit-bucket.js';
import { freePort, freshPostgresDatabase, s3Service } from '../support/services.js';
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

// The bucket's check at start failed and the shipper was never started: audit stayed staged until a restart.
test('an audit bucket unreachable when the server starts is shipped to once it answers', async () => {
  const { dataDir, db } = await dataDirAndDatabase('ctlruntime_s3late');
  const s3 = s3Service();
  const credentials = { region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const bucket = `ioboxx-audit-late-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  await openAuditBucket({ ...credentials, endpoint: s3.endpoint, bucket }).client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  // Nothing listens on the bucket's endpoint at start: the gateway is down (connection refused).
  const port = await freePort();
  let refused: () => void = () => undefined;
  const refusedAtStart = new Promise<void>((resolve) => (refused = resolve));
  const log = pino({ level: 'info' }, {
    write: (line: string) => {
      if (line.includes('audit bucket')) refused();
    },
  });
  const config = { dataDir, database: { url: db.url }, auditRetentionDays: 1, s3: { ...credentials, endpoint: `http://127.0.0.1:${port}`, bucket } } as unknown as Config;
  const runtime = await startControlRuntime({ config, log, withTenant: async () => { throw new Error('no store in this test'); } });
  cleanup.push(() => runtime.close());
  await refusedAtStart;

  // The gateway comes back (a proxy to the real one on the same port).
  const upstream = new URL(s3.endpoint);
  const sockets = new Set<Socket>();
  const proxy: Server = createServer((socket) => {
    const onward = connect(Number(upstream.port), upstream.hostname);
    for (const s of [socket, onward]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
    }
    socket.pipe(onward).pipe(socket);
  });
  await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
  // The S3 client keeps its connections alive: they are cut, or the proxy never closes.
  cleanup.push(() => new Promise<void>((resolve) => {
    proxy.close(() => resolve());
    for (const s of sockets) s.destroy();
  }));
  await runtime.control!.stageAudit(tenant, [{ source: 'access_log', sourceSeq: 1, event: { seq: 1 } }]);
  await waitUntil('the staged event shipped once the bucket answers', async () => (await runtime.control!.stagedAudit(tenant, { limit: 10 })).length === 0, 30_000);
  expect((await runtime.control!.auditBatches(tenant)).map((b) => b.versionId !== null)).toEqual([true]);
});
