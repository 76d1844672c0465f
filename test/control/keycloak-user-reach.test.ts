/**
 * A Keycloak user is one per realm: a change of the user itself (profile fields, the account's
 * existence) reaches every tenant the user is known in, whatever organization the event names;
 * a membership naming one organization stays in that tenant. Before, an UPDATE_PROFILE naming
 * one organization reached that tenant only, and the user's fields in their other tenants
 * stayed stale for good; a tenant the user joined later never got such a change either.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { projectKeycloakEvents } from '../../storage/control/keycloak-projector.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import { openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { freshPostgresDatabase, type FreshDatabase } from '../support/services.js';
import { landKeycloakJson } from './land-keycloak-event.js';

let dir: string;
let db: FreshDatabase;
let control: ControlPlane;
const stores = new Map<string, TenantMemory>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ioboxx-kc-reach-'));
  db = await freshPostgresDatabase('kcreach');
  control = await openControlPlane({ databaseUrl: db.url });
  for (const tenant of ['acme', 'globex', 'initech']) stores.set(tenant, await openTenantMemory(join(dir, tenant), tenant));
}, 60_000);

afterAll(async () => {
  for (const memory of stores.values()) await memory.close();
  await control?.close();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const reached: string[] = [];
const projectAll = () => projectKeycloakEvents(control, async (tenant, event, landingId) => {
  reached.push(`${tenant}:${event.dedupKey}`);
  await stores.get(tenant)!.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
});
const userIn = (tenant: string, userId: string) => stores.get(tenant)!.store.read((view) => view.table('kc_users').get([userId]));
const membershipsIn = (tenant: string, userId: string) =>
  stores.get(tenant)!.store.read((view) => [...view.table('kc_memberships').scan({ prefix: [userId] })].map((m) => m['scope_id']));
const join_ = (uid: string, time: number, org: string, userId: string) => ({
  uid, time, type: 'admin.ORGANIZATION_MEMBERSHIP-CREATE', realmId: 'r', resourcePath: `organizations/${org}-id/members/${userId}`, details: { org_alias: org },
});
const register_ = (uid: string, time: number, org: string, userId: string) => ({
  uid, time, type: 'access.REGISTER', realmId: 'r', userId, details: { org_alias: org, username: userId.replace(/^u-/, '') },
});
const profile = (uid: string, time: number, org: string, userId: string, details: object) => ({
  uid, time, type: 'access.UPDATE_PROFILE', realmId: 'r', userId, details: { org_alias: org, ...details },
});

test('a profile change naming one organization reaches each tenant the user is a member of, in event-time order; a membership stays in its tenant', async () => {
  await landKeycloakJson(control, { uid: 'r-1', time: 1_001, type: 'access.REGISTER', realmId: 'r', userId: 'u-ann', details: { org_alias: 'acme', username: 'ann', email: 'ann@acme.test' } });
  await landKeycloakJson(control, join_('r-2', 1_002, 'acme', 'u-ann'));
  await landKeycloakJson(control, join_('r-3', 1_003, 'globex', 'u-ann'));
  await projectAll();
  await landKeycloakJson(control, profile('r-5', 1_005, 'acme', 'u-ann', { updated_first_name: 'Ann', updated_last_name: 'Lee' }));
  await landKeycloakJson(control, { uid: 'r-6', time: 1_006, type: 'access.UPDATE_EMAIL', realmId: 'r', userId: 'u-ann', details: { org_alias: 'globex', updated_email: 'ann@new.test' } });
  // Late, older than the change above: it changes nothing anywhere.
  await landKeycloakJson(control, profile('r-4', 1_004, 'globex', 'u-ann', { updated_first_name: 'Old' }));
  await projectAll();
  for (const tenant of ['acme', 'globex']) {
    expect(await userIn(tenant, 'u-ann'), `${tenant}'s copy of the user`).toMatchObject({
      username: 'ann', email: 'ann@new.test', email_verified: false, first_name: 'Ann', last_name: 'Lee', updated_at_ms: 1_006,
    });
  }
  expect(await membershipsIn('acme', 'u-ann')).toEqual(['acme-id']);
  expect(await membershipsIn('globex', 'u-ann')).toEqual(['globex-id']);
  // A tenant the user is not a member of learns nothing of them.
  expect(await userIn('initech', 'u-ann')).toBeUndefined();
  expect(reached.filter((r) => r.startsWith('initech:'))).toEqual([]);
});

test('a tenant the user joins later gets the changes of the user that named another organization, and then their deletion', async () => {
  await landKeycloakJson(control, { uid: 'j-1', time: 2_001, type: 'access.REGISTER', realmId: 'r', userId: 'u-bo', details: { org_alias: 'acme', username: 'bo' } });
  await landKeycloakJson(control, profile('j-2', 2_002, 'acme', 'u-bo', { updated_first_name: 'Bo' }));
  await projectAll();
  await landKeycloakJson(control, join_('j-3', 2_003, 'initech', 'u-bo'));
  await projectAll();
  expect(await userIn('initech', 'u-bo')).toMatchObject({ username: 'bo', first_name: 'Bo', updated_at_ms: 2_002 });
  expect(await membershipsIn('initech', 'u-bo')).toEqual(['initech-id']);
  // An admin deletes the user from one organization's console: the user is gone realm-wide.
  await landKeycloakJson(control, {
    id: 'j-4', time: 2_004, operationType: 'DELETE', resourceType: 'USER', resourcePath: 'users/u-bo', realmId: 'r', details: { org_alias: 'acme' },
  });
  await projectAll();
  expect(await userIn('acme', 'u-bo')).toBeUndefined();
  expect(await userIn('initech', 'u-bo')).toBeUndefined();
  expect(await membershipsIn('initech', 'u-bo')).toEqual([]);
});

// Each event naming a tenant and a user cost a userKnownIn query and a rememberUserTenant insert
// (a profile change also a userTenants query): a burst of one user's events paid them all.
test('a burst of one user\'s events costs a constant number of user-tenant queries, not a few per event, and still reaches each tenant', async () => {
  await landKeycloakJson(control, register_('q-0', 3_000, 'acme', 'u-cy'));
  await landKeycloakJson(control, join_('q-1', 3_001, 'globex', 'u-cy'));
  for (let i = 2; i < 22; i++) await landKeycloakJson(control, profile(`q-${i}`, 3_000 + i, i % 2 ? 'acme' : 'globex', 'u-cy', { updated_first_name: `Cy${i}` }));
  const queries: string[] = [];
  const counted = {
    ...control,
    userKnownIn: (user: string, tenant: string) => { queries.push('userKnownIn'); return control.userKnownIn(user, tenant); },
    userTenants: (user: string) => { queries.push('userTenants'); return control.userTenants(user); },
    rememberUserTenant: (user: string, tenant: string) => { queries.push('rememberUserTenant'); return control.rememberUserTenant(user, tenant); },
  };
  await projectKeycloakEvents(counted, async (tenant, event, landingId) => {
    await stores.get(tenant)!.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
  });
  expect(queries.length, queries.join(', ')).toBeLessThanOrEqual(5);
  for (const tenant of ['acme', 'globex']) expect(await userIn(tenant, 'u-cy'), tenant).toMatchObject({ username: 'cy', first_name: 'Cy21' });
});
