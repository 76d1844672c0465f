/**
 * A tenant's Keycloak projection is bounded (tools/kc-bounds.ts): an event that would add a user,
 * membership, grant or stamp past its bound is refused whole, marked in projection_error and
 * reported, never dropped silently; applied landings are kept only as many as the bound;
 * deletion records are forgotten past their age as past their count. Before, these tables only
 * grew (kc_landings by one row per event, for good) and a deletion was kept forever.
 * Small bounds stand for the real ones.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { projectKeycloakEvents } from '../../storage/control/keycloak-projector.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import { Store } from '../../storage/store.js';
import type { KcBounds } from '../../tools/kc-bounds.js';
import { kcApplyEventKeeping, kcTables } from '../../tools/kc.js';
import { freshPostgresDatabase, type FreshDatabase } from '../support/services.js';
import { landKeycloakJson } from './land-keycloak-event.js';

let dir: string;
let db: FreshDatabase;
let control: ControlPlane;
let admin: pg.Client;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ioboxx-kc-bounds-'));
  db = await freshPostgresDatabase('kcbounds');
  control = await openControlPlane({ databaseUrl: db.url });
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
}, 60_000);

afterAll(async () => {
  await admin?.end();
  await control?.close();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

/** A store of one tenant within `bounds`, and a projection pass into it recording refusals. */
async function tenantWithin(name: string, bounds: Partial<KcBounds>) {
  const store = await Store.open({ dir: join(dir, name), module: { tables: kcTables, reducers: [kcApplyEventKeeping(bounds)] } });
  const refused: string[] = [];
  const project = () => projectKeycloakEvents(control, async (tenant, event, landingId) => {
    await store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
  }, { onRefused: (_id, _tenant, error) => refused.push((error as Error).message) });
  const rows = (table: string) => store.read((view) => [...view.table(table).scan()]);
  return { store, refused, project, rows };
}

const register = (uid: string, time: number, org: string, userId: string) => ({
  uid, time, type: 'access.REGISTER', realmId: 'r', userId, details: { org_alias: org, username: userId },
});
const projectionError = async (uid: string) =>
  (await admin.query<{ projection_error: string | null }>(`select projection_error from kc_event_landing where raw->>'uid' = $1`, [uid])).rows[0]?.projection_error;

test('a user past kcUsersMax is refused with the bound named in projection_error; users already there still change, and a deletion makes room', async () => {
  const t = await tenantWithin('users', { usersMax: 2 });
  try {
    for (const [i, user] of ['u1', 'u2', 'u3'].entries()) await landKeycloakJson(control, register(`ub-${i}`, 1_000 + i, 'ub', user));
    await landKeycloakJson(control, { uid: 'ub-9', time: 1_009, type: 'access.UPDATE_EMAIL', realmId: 'r', userId: 'u2', details: { org_alias: 'ub', updated_email: 'u2@x.org' } });
    expect(await t.project()).toEqual({ projected: 3, skipped: 1 });
    expect((await t.rows('kc_users')).map((u) => [u['user_id'], u['email']])).toEqual([['u1', null], ['u2', 'u2@x.org']]);
    expect(t.refused).toEqual([expect.stringMatching(/kc_users holds its maximum of 2 rows \(kcUsersMax\)/)]);
    expect(await projectionError('ub-2')).toMatch(/kcUsersMax/);
    // Nothing of the refused event is in the store: not its user's stamps either.
    expect((await t.rows('kc_versions')).filter((v) => v['user_id'] === 'u3')).toEqual([]);

    await landKeycloakJson(control, { uid: 'ub-10', time: 1_010, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u1', details: { org_alias: 'ub' } });
    await landKeycloakJson(control, register('ub-11', 1_011, 'ub', 'u3'));
    expect(await t.project()).toEqual({ projected: 2, skipped: 0 });
    expect((await t.rows('kc_users')).map((u) => u['user_id'])).toEqual(['u2', 'u3']);
  } finally {
    await t.store.close();
  }
});

test('memberships, role grants and stamps past their bounds are refused the same way', async () => {
  const t = await tenantWithin('things', { membershipsMax: 1, roleGrantsMax: 1, versionsMax: 20 });
  try {
    const joinGroup = (uid: string, time: number, group: string) => ({
      uid, time, type: 'admin.GROUP_MEMBERSHIP-CREATE', realmId: 'r', resourcePath: `users/m1/groups/${group}`, details: { org_alias: 'mb' },
    });
    const grant = (uid: string, time: number, role: string) => ({
      uid, time, type: 'admin.REALM_ROLE_MAPPING-CREATE', realmId: 'r', resourcePath: 'users/m1/role-mappings/realm', representation: `[{"name":"${role}"}]`, details: { org_alias: 'mb' },
    });
    await landKeycloakJson(control, register('mb-0', 2_000, 'mb', 'm1'));
    await landKeycloakJson(control, joinGroup('mb-1', 2_001, 'g1'));
    await landKeycloakJson(control, joinGroup('mb-2', 2_002, 'g2'));
    await landKeycloakJson(control, grant('mb-3', 2_003, 'reader'));
    await landKeycloakJson(control, grant('mb-4', 2_004, 'writer'));
    expect(await t.project()).toEqual({ projected: 3, skipped: 2 });
    expect(t.refused).toEqual([
      expect.stringMatching(/kc_memberships holds its maximum of 1 rows \(kcMembershipsMax\)/),
      expect.stringMatching(/kc_role_grants holds its maximum of 1 rows \(kcRoleGrantsMax\)/),
    ]);
    // The user's row and six fields (REGISTER stamps username only: row + 1), g1, reader: 4 stamps.
    expect((await t.rows('kc_versions')).length).toBe(4);

    const small = await tenantWithin('stamps', { versionsMax: 3 });
    try {
      await landKeycloakJson(control, register('vb-0', 2_100, 'vb', 'v1')); // row + username: 2 stamps
      await landKeycloakJson(control, { uid: 'vb-1', time: 2_101, type: 'access.UPDATE_PROFILE', realmId: 'r', userId: 'v1', details: { org_alias: 'vb', updated_first_name: 'V', updated_last_name: 'W' } });
      expect(await small.project()).toEqual({ projected: 1, skipped: 1 });
      expect(small.refused).toEqual([expect.stringMatching(/kc_versions holds its maximum of 3 rows \(kcVersionsMax\)/)]);
      expect((await small.rows('kc_users'))[0]).toMatchObject({ first_name: null, last_name: null });
    } finally {
      await small.store.close();
    }
  } finally {
    await t.store.close();
  }
});

test('applied landings past kcLandingsKeptMax are forgotten oldest first, a few per event; an event applied again after that changes nothing', async () => {
  const t = await tenantWithin('landings', { landingsKeptMax: 3 });
  try {
    for (let i = 1; i <= 6; i++) {
      await landKeycloakJson(control, { uid: `lk-${i}`, time: 3_000 + i, type: 'access.UPDATE_EMAIL', realmId: 'r', userId: 'l1', details: { org_alias: 'lk', updated_email: `v${i}@x.org` } });
      await t.project(); // one transaction per event: applied_at_ms orders them
    }
    const landings = await t.rows('kc_landings');
    expect(landings).toHaveLength(3);
    const kept = (await admin.query<{ landing_id: string }>(`select landing_id::text from kc_event_landing where raw->>'uid' in ('lk-4', 'lk-5', 'lk-6') order by landing_id`)).rows.map((r) => r.landing_id);
    expect(landings.map((l) => l['landing_id']).sort()).toEqual(kept.sort());
    // lk-2 applied again (its landing forgotten here): a no-op by event time.
    const [lk2] = (await admin.query<{ landing_id: string; raw: object }>(`select landing_id::text, raw from kc_event_landing where raw->>'uid' = 'lk-2'`)).rows;
    const again = await t.store.call<{ applied: boolean; effect: string }>('kc_apply_event', { landing_id: lk2!.landing_id, event: lk2!.raw as never }, systemCaller('lk', 'kc-projector'));
    expect(again.result.effect).toMatch(/^ignored/);
    expect((await t.rows('kc_users'))[0]).toMatchObject({ email: 'v6@x.org', updated_at_ms: 3_006 });
  } finally {
    await t.store.close();
  }
});

test('a deletion older than kcDeletionAgeMsMax (as of the event applied) is forgotten and raises the horizon; an event dated ahead of the server ages out nothing recent', async () => {
  const dayMs = 86_400_000;
  const t = await tenantWithin('aged', { deletionAgeMsMax: 10 * dayMs });
  const leave = (uid: string, time: number, group: string) => ({
    uid, time, type: 'admin.GROUP_MEMBERSHIP-DELETE', realmId: 'r', resourcePath: `users/a1/groups/${group}`, details: { org_alias: 'ag' },
  });
  try {
    const base = Date.UTC(2025, 0, 1);
    await landKeycloakJson(control, leave('ag-1', base, 'g-old'));
    await landKeycloakJson(control, leave('ag-2', base + 5 * dayMs, 'g-mid'));
    expect(await t.project()).toEqual({ projected: 2, skipped: 0 });
    expect((await t.rows('kc_deletions')).length).toBe(2);
    // An event 11 days after the first deletion: that one is past the age, the other is not.
    await landKeycloakJson(control, leave('ag-3', base + 11 * dayMs, 'g-new'));
    expect(await t.project()).toEqual({ projected: 1, skipped: 0 });
    expect((await t.rows('kc_deletions')).map((d) => d['scope']).sort()).toEqual(['g-mid', 'g-new']);
    expect((await t.rows('kc_horizon'))[0]).toMatchObject({ event_time_ms: base, event_key: 'id:ag-1', forgotten: 1 });
    // A late addition of g-old, older than its forgotten removal: refused, not brought back.
    await landKeycloakJson(control, { uid: 'ag-0', time: base - 1, type: 'admin.GROUP_MEMBERSHIP-CREATE', realmId: 'r', resourcePath: 'users/a1/groups/g-old', details: { org_alias: 'ag' } });
    expect(await t.project()).toEqual({ projected: 0, skipped: 1 });
    expect(t.refused).toEqual([expect.stringMatching(/not newer than the deletion horizon .*kcDeletionAgeMsMax/)]);
    // An event dated a year ahead of the server's clock: ages are taken as of the server's time
    // then, so a deletion of yesterday stays (as of the event's date it would be past 10 days).
    const ahead = await tenantWithin('ahead', { deletionAgeMsMax: 10 * dayMs });
    try {
      const now = Date.now();
      await landKeycloakJson(control, leave('ah-1', now - dayMs, 'g-recent'));
      await landKeycloakJson(control, leave('ah-2', now + 365 * dayMs, 'g-future'));
      expect(await ahead.project()).toEqual({ projected: 2, skipped: 0 });
      expect((await ahead.rows('kc_deletions')).map((d) => d['scope']).sort()).toEqual(['g-future', 'g-recent']);
    } finally {
      await ahead.store.close();
    }
  } finally {
    await t.store.close();
  }
});
