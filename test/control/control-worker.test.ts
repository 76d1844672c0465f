/**
 * The control worker's per-tenant drains on a real Postgres (the shared test cluster, a fresh
 * database of this file's own) and fake tenant stores.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { startControlWorker } from '../../storage/control/control-worker.js';
import { freshPostgresDatabase, type FreshDatabase } from '../support/services.js';
import { MemoryStoreFake } from './memory-store-fake.js';

let db: FreshDatabase;
let control: ControlPlane;
beforeAll(async () => {
  db = await freshPostgresDatabase('control_worker');
  control = await openControlPlane({ databaseUrl: db.url });
}, 60_000);
afterAll(async () => {
  await control?.close();
  await db?.drop();
});

describe('control worker', () => {
  // controlTenantsMax (100,000) scaled down to 2: a tenant seen once used to hold its place for
  // good, so past the bound no new tenant's outbox was ever drained.
  test('tenants drained one after another never fill the bound: the fifth of a bound of 2 is drained too', async () => {
    const errors: unknown[] = [];
    const worker = startControlWorker(control, { applyKeycloakEvent: async () => undefined, tenantsMax: 2, onError: (_job, error) => errors.push(error) });
    try {
      const day = Date.UTC(2026, 0, 5, 10);
      for (const tenant of ['t1', 't2', 't3', 't4', 't5']) {
        const store = new MemoryStoreFake();
        store.table('run_outbox').put({ run_id: `r-${tenant}`, kind: 'bpmn', definition: 'invoice', outcome: 'completed', started_at_ms: day, ended_at_ms: day + 1_000, details: {} });
        worker.nudgeTenant(tenant, store.asStore());
        await worker.whenTenantIdle(tenant);
        expect(store.table('run_outbox').size, `${tenant}'s run outbox was not drained`).toBe(0);
        expect((await control.runHistory(tenant, { fromMs: day - 1, toMs: day + 1, limit: 10 })).map((h) => h.runId)).toEqual([`r-${tenant}`]);
      }
      expect(errors).toEqual([]);
    } finally {
      await worker.stop();
    }
  });

  // A run failing while the worker stopped counted as drained: its tenant would not be marked for the next start.
  test('a tenant is reported drained only once its drain succeeds, not when it fails as the worker stops', async () => {
    const drained: string[] = [];
    const worker = startControlWorker(control, {
      applyKeycloakEvent: async () => undefined, retryMs: 60_000, onTenantDrained: (tenant) => drained.push(tenant),
    });
    let release: () => void = () => undefined;
    const started = new Promise<void>((resolve) => {
      worker.nudgeTenant('failing', async () => {
        resolve();
        await new Promise<void>((unblock) => (release = unblock));
        throw new Error('Postgres away');
      });
    });
    await started;
    const stopped = worker.stop();
    release();
    await stopped;
    const store = new MemoryStoreFake();
    const ok = startControlWorker(control, { applyKeycloakEvent: async () => undefined, onTenantDrained: (tenant) => drained.push(tenant) });
    ok.nudgeTenant('fine', store.asStore());
    await ok.whenTenantIdle('fine');
    await ok.stop();
    expect(drained).toEqual(['fine']);
  });

  // A refusal only an operator can end was retried every retryMs for as long as the server ran.
  test('a tenant whose failure is given up is not retried, lets its waiters go, and runs again at its next nudge', async () => {
    const events: string[] = [];
    let attempts = 0;
    const worker = startControlWorker(control, {
      applyKeycloakEvent: async () => undefined,
      retryMs: 10,
      givenUp: (error) => error instanceof Error && error.message === 'refused for good',
      onTenantFailed: (tenant) => events.push(`failed ${tenant}`),
      onTenantGivenUp: (tenant) => events.push(`given up ${tenant}`),
      onTenantDrained: (tenant) => events.push(`drained ${tenant}`),
      onError: (job) => events.push(`error ${job}`),
    });
    try {
      const refused = async () => {
        attempts += 1;
        throw new Error('refused for good');
      };
      worker.nudgeTenant('gone', refused);
      await worker.whenTenantIdle('gone');
      await new Promise((resolve) => setTimeout(resolve, 100)); // ten retry periods
      expect(attempts, 'retried after being given up').toBe(1);
      expect(events).toEqual(['failed gone', 'given up gone']);
      worker.nudgeTenant('gone', refused);
      await worker.whenTenantIdle('gone');
      expect(attempts).toBe(2);
    } finally {
      await worker.stop();
    }
  });
});
