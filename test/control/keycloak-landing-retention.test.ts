/**
 * Landed Keycloak events are deleted from Postgres once projected longer ago than the retention
 * (IOBOXX_KC_LANDING_RETENTION_DAYS), in chunks; a pending landing is never deleted. Before, the
 * landing table only grew: every event of the realm's life stayed, raw (e-mail addresses too).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { startControlWorker } from '../../storage/control/control-worker.js';
import { dayMs, pruneProjectedLandings } from '../../storage/control/landing-retention.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import { openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { freshPostgresDatabase, type FreshDatabase } from '../support/services.js';
import { landKeycloakJson } from './land-keycloak-event.js';

let dir: string;
let db: FreshDatabase;
let control: ControlPlane;
let admin: pg.Client;
let memory: TenantMemory;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ioboxx-kc-retention-'));
  db = await freshPostgresDatabase('kcretention');
  control = await openControlPlane({ databaseUrl: db.url });
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  memory = await openTenantMemory(join(dir, 'acme'), 'acme');
}, 60_000);

afterAll(async () => {
  await memory?.close();
  await admin?.end();
  await control?.close();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const retentionDays = 365;

const land = (uid: string, time: number, email: string): Promise<number> =>
  landKeycloakJson(control, { uid, time, type: 'access.UPDATE_EMAIL', realmId: 'r', userId: 'u-ret', details: { org_alias: 'acme', updated_email: email } });

const landedUids = async (): Promise<string[]> =>
  (await admin.query<{ uid: string }>(`select raw->>'uid' as uid from kc_event_landing order by landing_id`)).rows.map((r) => r.uid);

test('landings projected longer ago than the retention are deleted by the projector, oldest first; newer and pending ones stay, and a redelivery of a deleted one changes nothing', async () => {
  for (let i = 1; i <= 5; i++) await land(`ret-${i}`, 1_000 + i, `v${i}@x.org`);
  const worker = startControlWorker(control, {
    applyKeycloakEvent: async (tenant, event, landingId) => {
      await memory.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
    },
    landingRetentionMs: retentionDays * dayMs,
    landingPruneEveryMs: 0,
  });
  try {
    worker.nudgeGlobal();
    await worker.whenGlobalIdle();
    expect(await landedUids()).toEqual(['ret-1', 'ret-2', 'ret-3', 'ret-4', 'ret-5']); // all projected just now: within the retention
    // Three were projected longer ago than the retention, the fourth a day within it.
    await admin.query(`update kc_event_landing set projected_at = now() - interval '400 days' where raw->>'uid' in ('ret-1', 'ret-2', 'ret-3')`);
    await admin.query(`update kc_event_landing set projected_at = now() - interval '364 days' where raw->>'uid' = 'ret-4'`);
    await land('ret-6', 1_006, 'v6@x.org');
    await admin.query(`update kc_event_landing set landed_at = now() - interval '500 days' where raw->>'uid' = 'ret-6'`);
    const pendingBefore = await control.pendingKeycloakEvents(10);
    expect(pendingBefore.map((e) => e.dedupKey)).toEqual(['id:ret-6']);
    // The worker prunes after its projection pass; ret-6 is projected in that very pass (so it stays: projected now).
    worker.nudgeGlobal();
    await worker.whenGlobalIdle();
    expect(await landedUids()).toEqual(['ret-4', 'ret-5', 'ret-6']);

    // Keycloak redelivers ret-2 (its landing is gone): it lands anew and changes nothing in the tenant.
    await land('ret-2', 1_002, 'v2@x.org');
    worker.nudgeGlobal();
    await worker.whenGlobalIdle();
    const user = await memory.store.read((view) => view.table('kc_users').get(['u-ret']));
    expect(user).toMatchObject({ email: 'v6@x.org', updated_at_ms: 1_006 });
  } finally {
    await worker.stop();
  }
});

test('a prune deletes in chunks of rowsMax and stops after chunksMax, saying more are due; a landing not yet projected is never deleted, however old', async () => {
  await admin.query('delete from kc_event_landing');
  for (let i = 1; i <= 7; i++) await land(`chunk-${i}`, 2_000 + i, `c${i}@x.org`);
  await admin.query(`update kc_event_landing set projected_at = now() - interval '400 days', landed_at = now() - interval '401 days' where raw->>'uid' <> 'chunk-7'`);
  await admin.query(`update kc_event_landing set landed_at = now() - interval '900 days' where raw->>'uid' = 'chunk-7'`);
  expect(await pruneProjectedLandings(control, retentionDays * dayMs, { rowsMax: 2, chunksMax: 2 })).toEqual({ deleted: 4, more: true });
  expect(await landedUids()).toEqual(['chunk-5', 'chunk-6', 'chunk-7']);
  expect(await pruneProjectedLandings(control, retentionDays * dayMs, { rowsMax: 2, chunksMax: 2 })).toEqual({ deleted: 2, more: false });
  expect(await landedUids()).toEqual(['chunk-7']);
  expect((await control.pendingKeycloakEvents(10)).map((e) => e.dedupKey)).toEqual(['id:chunk-7']);
});
