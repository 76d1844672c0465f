/**
 * Postgres stopped while a tenant keeps writing: the tenant's writes still succeed (its
 * commitlog is the first durable hop), the drains fail (behind a pooler: wait) while it is
 * away, and once it is back the control worker drains the run outbox and the access log,
 * exactly once. A real tenant store (the memory module) and a real Postgres cluster of this
 * test's own, stopped and started with scripts/services/postgres.sh (so the shared test cluster
 * is never disturbed).
 * Twice: straight to Postgres, and through a PgBouncer of its own in transaction mode
 * (scripts/services/pgbouncer.sh) that stays up while Postgres is away, as a hosted pooler does.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Caller } from '../../storage/changes.js';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { startControlWorker, type ControlWorker } from '../../storage/control/control-worker.js';
import { openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { freePort, poolerAdmin, runServiceScript } from '../support/services.js';

describe.each([['straight to Postgres', false], ['through PgBouncer (transaction pooling)', true]] as const)('%s', (_name, pooled) => {
  const tenant = 'acme';
  const caller: Caller = { tenant, subject: 'user-1', roles: ['write'] };
  let dir: string;
  let env: Record<string, string>;
  let control: ControlPlane;
  let memory: TenantMemory;
  let worker: ControlWorker;
  const errors: unknown[] = [];
  let firstError: Promise<void>;
  let poolerUrl: string | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ioboxx-pg-outage-'));
    await chmod(dir, 0o755); // the cluster runs as the `postgres` user, which must reach its directory
    env = { IOBOXX_SERVICES_DIR: join(dir, 'services'), IOBOXX_PG_PORT: String(await freePort()) };
    const lines = await runServiceScript('postgres.sh', ['up'], env);
    const direct = /^IOBOXX_TEST_DATABASE_URL=(.*)$/m.exec(lines)![1]!;
    if (pooled) {
      env.IOBOXX_PGBOUNCER_PORT = String(await freePort());
      const poolerLines = await runServiceScript('pgbouncer.sh', ['up'], env);
      poolerUrl = /^IOBOXX_TEST_POOLER_URL=(.*)$/m.exec(poolerLines)![1]!;
      control = await openControlPlane({ databaseUrl: poolerUrl, databaseDirectUrl: direct });
    } else {
      control = await openControlPlane({ databaseUrl: direct });
    }
    memory = await openTenantMemory(join(dir, 'store'), tenant);
    let failed: () => void = () => undefined;
    firstError = new Promise((resolve) => (failed = resolve));
    worker = startControlWorker(control, {
      applyKeycloakEvent: async () => undefined,
      retryMs: 200,
      onError: (_job, error) => {
        errors.push(error);
        failed();
      },
    });
    // As the server wires it: every durable commit nudges the tenant's drain.
    memory.store.onCommit(() => worker.nudgeTenant(tenant, memory.store));
  });

  afterAll(async () => {
    await worker?.stop();
    await memory?.close();
    await control?.close();
    if (pooled) await runServiceScript('pgbouncer.sh', ['purge'], env).catch(() => undefined);
    await runServiceScript('postgres.sh', ['purge'], env).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  /** Resolves once a client of PgBouncer waits for a server connection (bounded). */
  async function waitingAtPooler(url: string): Promise<void> {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const pools = await poolerAdmin((admin) => admin.query('show pools'), url);
      if (pools.rows.some((r: { cl_waiting: string }) => Number(r.cl_waiting) > 0)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('no client of the pooler waited for Postgres within 30 s');
  }

  async function finishSession(n: number): Promise<string> {
    const started = await memory.store.call<{ session: string }>('session_start', { agent: 'planner', title: `s${n}` }, caller);
    await memory.store.call('session_end', { session: started.result.session, outcome: 'completed' }, caller);
    await memory.store.call('access_log_append', { subject: 'user-1', action: 'tools/call', target: 'session_end', outcome: 'ok' }, caller);
    return started.result.session;
  }

  test('with Postgres stopped, tenant writes succeed and the outboxes drain exactly once after it returns', async () => {
    const before = [await finishSession(1), await finishSession(2)];
    await worker.whenTenantIdle(tenant);
    expect((await control.runHistory(tenant, { fromMs: 0, toMs: Date.now() + 60_000, limit: 100 })).length).toBe(2);
    expect(errors).toEqual([]);

    await runServiceScript('postgres.sh', ['down'], env);
    const during: string[] = [];
    for (let n = 3; n <= 6; n++) during.push(await finishSession(n)); // every write acknowledged
    if (poolerUrl === undefined) {
      await firstError; // the drain met the outage ...
    } else {
      // Behind a pooler that stays up, the drain's statement waits in the pooler's queue for a
      // server connection (PgBouncer's query_wait_timeout, 120 s by default) instead of failing.
      await waitingAtPooler(poolerUrl);
    }
    expect(await memory.store.read((view) => view.table('run_outbox').size)).toBe(4); // ... and kept the rows

    await runServiceScript('postgres.sh', ['up'], env);
    await worker.whenTenantIdle(tenant); // a retry succeeded
    expect(await memory.store.read((view) => view.table('run_outbox').size)).toBe(0);

    const history = await control.runHistory(tenant, { fromMs: 0, toMs: Date.now() + 60_000, limit: 100 });
    expect(history.map((h) => h.runId).sort()).toEqual([...before, ...during].sort());
    expect(history.every((h) => h.kind === 'session' && h.definition === 'planner' && h.outcome === 'completed')).toBe(true);
    const staged = await control.stagedAudit(tenant, { limit: 100 });
    expect(staged.map((s) => s.sourceSeq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(staged.map((s) => s.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
