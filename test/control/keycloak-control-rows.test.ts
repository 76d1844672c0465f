/**
 * The control plane's Keycloak tables no longer only grow. kc_user_tenants (the tenants each user
 * is known in): a user's pairs go once their deletion (DELETE_ACCOUNT, an admin's USER-DELETE) is
 * applied there; a late or redelivered event of the deleted user brings none back (and finds the
 * user deleted in the tenant it names), one of the user made again after it does; one user is
 * known in at most kcUserTenantsMax tenants, the realm's users in kcUserTenantPairsMax in all (an
 * event past either refused whole, the bound named in its projection_error). kc_organizations
 * (org id -> alias): a deleted organization's row is marked when its ORGANIZATION-DELETE is
 * projected, still routes landings naming it by id, and goes after the landing retention; the
 * realm holds at most kcOrganizationsMax of them (deleted ones too, until they go), an event
 * naming one more refused whole, and a late event of a deleted organization brings its row back
 * marked, while a newer one (the organization made again with the same id) unmarks it. Migration 10 clears what the code before left behind. Before, every one of these rows stayed for good.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { startControlWorker } from '../../storage/control/control-worker.js';
import { projectKeycloakEvents, type ApplyKeycloakEvent } from '../../storage/control/keycloak-projector.js';
import { pruneDeletedOrganizations } from '../../storage/control/landing-retention.js';
import { applyMigrations } from '../../storage/control/migrations.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import { signKeycloakBody } from '../../storage/control/keycloak-event.js';
import { MemoryError } from '../../storage/errors.js';
import { Store } from '../../storage/store.js';
import { kcApplyEvent, kcTables } from '../../tools/kc.js';
import { freshPostgresDatabase, type FreshDatabase } from '../support/services.js';
import { landKeycloakJson } from './land-keycloak-event.js';
import { startWebhookServer, type WebhookServer } from './webhook-server.js';

let dir: string;
let db: FreshDatabase;
let control: ControlPlane;
let admin: pg.Client;
const stores = new Map<string, Store>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ioboxx-kc-rows-'));
  db = await freshPostgresDatabase('kcrows');
  control = await openControlPlane({ databaseUrl: db.url });
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
}, 60_000);

afterAll(async () => {
  for (const store of stores.values()) await store.close();
  await admin?.end();
  await control?.close();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function storeOf(tenant: string): Promise<Store> {
  let store = stores.get(tenant);
  if (!store) {
    store = await Store.open({ dir: join(dir, tenant), module: { tables: kcTables, reducers: [kcApplyEvent] } });
    stores.set(tenant, store);
  }
  return store;
}

const applyToStore: ApplyKeycloakEvent = async (tenant, event, landingId) => {
  await (await storeOf(tenant)).call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
};
const project = (apply: ApplyKeycloakEvent = applyToStore) => projectKeycloakEvents(control, apply);
const userIn = async (tenant: string, userId: string) => (await storeOf(tenant)).read((view) => view.table('kc_users').get([userId]));
const membershipsIn = async (tenant: string, userId: string) =>
  (await storeOf(tenant)).read((view) => [...view.table('kc_memberships').scan({ prefix: [userId] })].map((m) => m['scope_id']));
const userTenantRows = async (userId: string) =>
  (await admin.query<{ tenant: string }>('select tenant from kc_user_tenants where user_id = $1 order by tenant', [userId])).rows.map((r) => r.tenant);

const register = (uid: string, time: number, org: string, userId: string) => ({
  uid, time, type: 'access.REGISTER', realmId: 'r', userId, details: { org_alias: org, username: userId },
});
const join_ = (uid: string, time: number, org: string, userId: string) => ({
  uid, time, type: 'admin.ORGANIZATION_MEMBERSHIP-CREATE', realmId: 'r', resourcePath: `organizations/${org}-id/members/${userId}`, details: { org_alias: org },
});
const profile = (uid: string, time: number, org: string, userId: string, firstName: string) => ({
  uid, time, type: 'access.UPDATE_PROFILE', realmId: 'r', userId, details: { org_alias: org, updated_first_name: firstName },
});
const adminDelete = (id: string, time: number, userId: string) => ({
  id, time, operationType: 'DELETE', resourceType: 'USER', resourcePath: `users/${userId}`, realmId: 'r',
});

test('a deleted user\'s tenants go once the deletion is applied there; late and redelivered events of theirs bring none back and find the user deleted', async () => {
  await landKeycloakJson(control, register('d-1', 1_001, 'acme', 'u-dee'));
  await landKeycloakJson(control, join_('d-2', 1_002, 'globex', 'u-dee'));
  await landKeycloakJson(control, register('d-3', 1_003, 'acme', 'u-eve'));
  await project();
  expect(await userTenantRows('u-dee')).toEqual(['acme', 'globex']);

  await landKeycloakJson(control, adminDelete('d-10', 1_010, 'u-dee')); // names no organization: reaches both
  await project();
  expect(await userTenantRows('u-dee'), 'the deleted user is known nowhere').toEqual([]);
  expect(await userTenantRows('u-eve'), 'another user keeps theirs').toEqual(['acme']);
  expect(await userIn('acme', 'u-dee')).toBeUndefined();
  expect(await userIn('globex', 'u-dee')).toBeUndefined();

  // Late, older than the deletion: a membership in a tenant that never knew the user, a profile
  // change in one that did. Each tenant gets the deletion first and keeps nothing of the user.
  await landKeycloakJson(control, join_('d-5', 1_005, 'initech', 'u-dee'));
  await landKeycloakJson(control, profile('d-6', 1_006, 'acme', 'u-dee', 'Dee'));
  // A redelivery of an event whose landing was deleted (past the retention) lands again.
  await admin.query(`delete from kc_event_landing where raw->>'uid' = 'd-2'`);
  await landKeycloakJson(control, join_('d-2', 1_002, 'globex', 'u-dee'));
  expect(await project()).toEqual({ projected: 3, skipped: 0 });
  expect(await userTenantRows('u-dee')).toEqual([]);
  for (const tenant of ['acme', 'globex', 'initech']) {
    expect(await userIn(tenant, 'u-dee'), tenant).toBeUndefined();
    expect(await membershipsIn(tenant, 'u-dee'), tenant).toEqual([]);
  }

  // The deletion itself redelivered (its landing deleted too): still known nowhere.
  await admin.query(`delete from kc_event_landing where raw->>'id' = 'd-10'`);
  await landKeycloakJson(control, { ...adminDelete('d-10', 1_010, 'u-dee'), details: { org_alias: 'acme' } });
  await project();
  expect(await userTenantRows('u-dee')).toEqual([]);

  // The user made again with the same id (an import), after the deletion: known again where named.
  await landKeycloakJson(control, register('d-20', 1_020, 'globex', 'u-dee'));
  await project();
  expect(await userTenantRows('u-dee')).toEqual(['globex']);
  expect(await userIn('globex', 'u-dee')).toMatchObject({ username: 'u-dee', updated_at_ms: 1_020 });
  expect(await userIn('acme', 'u-dee')).toBeUndefined();
});

test('DELETE_ACCOUNT naming one organization forgets every tenant it was applied in; a tenant refusing it keeps its pair', async () => {
  await landKeycloakJson(control, register('a-1', 2_001, 'acme', 'u-fay'));
  await landKeycloakJson(control, join_('a-2', 2_002, 'globex', 'u-fay'));
  await landKeycloakJson(control, join_('a-3', 2_003, 'initech', 'u-fay'));
  await project();
  expect(await userTenantRows('u-fay')).toEqual(['acme', 'globex', 'initech']);
  await landKeycloakJson(control, { uid: 'a-9', time: 2_009, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-fay', details: { org_alias: 'acme' } });
  const refused: string[] = [];
  await projectKeycloakEvents(control, async (tenant, event, landingId) => {
    if (tenant === 'initech' && event.type === 'DELETE_ACCOUNT') throw new MemoryError('invalid_argument', 'initech refuses it');
    await applyToStore(tenant, event, landingId);
  }, { onRefused: (_id, tenant) => refused.push(tenant) });
  expect(refused).toEqual(['initech']);
  expect(await userTenantRows('u-fay'), 'the tenant still holding the user is still reached').toEqual(['initech']);
  expect(await userIn('globex', 'u-fay')).toBeUndefined();
});

test('a user is known in at most kcUserTenantsMax tenants: an event past it is refused whole, naming the bound; their deletion still reaches them all', async () => {
  const reached: string[] = [];
  const refusals: string[] = [];
  const fake: ApplyKeycloakEvent = async (tenant, event) => void reached.push(`${tenant}:${event.dedupKey}`);
  const passWithin = (userTenantsMax: number) => projectKeycloakEvents(control, fake, {
    userTenantsMax, onRefused: (_id, tenant, error) => refusals.push(`${tenant}: ${(error as Error).message}`),
  });
  for (const [i, org] of ['b-one', 'b-two', 'b-three'].entries()) await landKeycloakJson(control, join_(`b-${i}`, 3_000 + i, org, 'u-gus'));
  await landKeycloakJson(control, profile('b-5', 3_005, 'b-one', 'u-gus', 'Gus'));
  expect(await passWithin(2)).toEqual({ projected: 3, skipped: 1 });
  expect(await userTenantRows('u-gus')).toEqual(['b-one', 'b-two']);
  expect(refusals).toHaveLength(1);
  expect(refusals[0]).toMatch(/^b-three: .*u-gus is known in 2 tenants.*kcUserTenantsMax 2/);
  expect(reached.filter((r) => r.startsWith('b-three:'))).toEqual([]);
  const error = (await admin.query<{ projection_error: string }>(`select projection_error from kc_event_landing where raw->>'uid' = 'b-2'`)).rows[0]!;
  expect(error.projection_error).toMatch(/kcUserTenantsMax/);

  reached.length = 0;
  await landKeycloakJson(control, { uid: 'b-9', time: 3_009, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-gus', details: { org_alias: 'b-three' } });
  expect(await passWithin(2)).toEqual({ projected: 1, skipped: 0 });
  expect(reached.filter((r) => r.endsWith(':id:b-9')).sort()).toEqual(['b-one:id:b-9', 'b-three:id:b-9', 'b-two:id:b-9']);
  expect(await userTenantRows('u-gus')).toEqual([]);
});

test('a realm holds at most kcUserTenantPairsMax pairs of user and tenant: past it a new pair is refused, naming the bound; a deletion makes room', async () => {
  const refusals: string[] = [];
  const fake: ApplyKeycloakEvent = async () => undefined;
  const pairsNow = Number((await admin.query<{ n: string }>('select count(*)::text as n from kc_user_tenants')).rows[0]!.n);
  const passWithin = () => projectKeycloakEvents(control, fake, {
    userTenantPairsMax: pairsNow + 2, onRefused: (_id, tenant, error) => refusals.push(`${tenant}: ${(error as Error).message}`),
  });
  await landKeycloakJson(control, join_('p-1', 3_101, 'p-one', 'u-hub'));
  await landKeycloakJson(control, join_('p-2', 3_102, 'p-two', 'u-hub'));
  await landKeycloakJson(control, join_('p-3', 3_103, 'p-one', 'u-ivy'));
  await landKeycloakJson(control, profile('p-4', 3_104, 'p-one', 'u-hub', 'Hub')); // pairs known: applied
  expect(await passWithin()).toEqual({ projected: 3, skipped: 1 });
  expect(refusals).toHaveLength(1);
  expect(refusals[0]).toMatch(new RegExp(`^p-one: .*holds ${pairsNow + 2} pairs of user and tenant.*kcUserTenantPairsMax ${pairsNow + 2}.*user u-ivy`));
  expect(await userTenantRows('u-ivy')).toEqual([]);

  await landKeycloakJson(control, { uid: 'p-5', time: 3_105, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-hub', details: {} });
  await landKeycloakJson(control, join_('p-6', 3_106, 'p-one', 'u-ivy'));
  expect(await passWithin()).toEqual({ projected: 2, skipped: 0 });
  expect(await userTenantRows('u-ivy')).toEqual(['p-one']);
  expect(refusals).toHaveLength(1);
});

test('a deleted organization\'s row is marked when its deletion is projected, still routes landings naming it by id, and goes after the retention', async () => {
  await control.rememberOrganization('org-del', 'doomed');
  await control.rememberOrganization('org-live', 'alive');
  const reached: string[] = [];
  const record: ApplyKeycloakEvent = async (tenant, event) => void reached.push(`${tenant}:${event.type}`);
  await landKeycloakJson(control, { id: 'o-1', time: 4_001, operationType: 'DELETE', resourceType: 'ORGANIZATION', resourcePath: 'organizations/org-del', realmId: 'r' });
  // Pending behind the deletion, naming the organization only by id (Keycloak removing its members).
  await landKeycloakJson(control, {
    id: 'o-2', time: 4_001, operationType: 'DELETE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: 'organizations/org-del/members/u-hal', realmId: 'r',
  });
  await project(record);
  expect(reached).toEqual(['doomed:ORGANIZATION-DELETE', 'doomed:ORGANIZATION_MEMBERSHIP-DELETE']);
  const marks = async () => (await admin.query<{ org_id: string; deleted: boolean }>(
    `select org_id, deleted_at is not null as deleted from kc_organizations where org_id like 'org-%' order by org_id`)).rows;
  expect(await marks()).toEqual([{ org_id: 'org-del', deleted: true }, { org_id: 'org-live', deleted: false }]);

  const retentionMs = 60_000;
  expect(await pruneDeletedOrganizations(control, retentionMs)).toEqual({ deleted: 0, more: false });
  expect(await control.organizationAlias('org-del')).toBe('doomed');
  await admin.query(`update kc_organizations set deleted_at = now() - interval '2 minutes' where org_id = 'org-del'`);
  // The projector's worker prunes them after its pass, with the landings.
  const pruned: number[] = [];
  const worker = startControlWorker(control, {
    applyKeycloakEvent: record, landingRetentionMs: retentionMs, landingPruneEveryMs: 0, onOrganizationsPruned: (prune) => pruned.push(prune.deleted),
  });
  try {
    worker.nudgeGlobal();
    await worker.whenGlobalIdle();
  } finally {
    await worker.stop();
  }
  expect(pruned).toEqual([1]);
  expect(await control.organizationAlias('org-del')).toBeUndefined();
  expect(await control.organizationAlias('org-live')).toBe('alive');
});

test('migration 10 forgets the tenants of users deleted before it and marks organizations deleted before it, keeping what may still be needed', async () => {
  // As the code before left them: the pairs of users whose deletion was projected, no marks.
  await landKeycloakJson(control, register('m-1', 5_001, 'acme', 'u-ida'));
  await landKeycloakJson(control, register('m-2', 5_002, 'acme', 'u-jo'));
  await landKeycloakJson(control, register('m-3', 5_003, 'acme', 'u-kim'));
  await landKeycloakJson(control, { uid: 'm-4', time: 5_004, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-ida', details: {} });
  await landKeycloakJson(control, adminDelete('m-5', 5_005, 'u-jo'));
  await landKeycloakJson(control, register('m-6', 5_006, 'globex', 'u-jo')); // made again after the deletion
  await landKeycloakJson(control, adminDelete('m-7', 5_007, 'u-kim'));
  await control.rememberOrganization('org-old', 'old');
  await landKeycloakJson(control, { id: 'm-8', time: 5_008, operationType: 'DELETE', resourceType: 'ORGANIZATION', resourcePath: 'organizations/org-old', realmId: 'r' });
  await projectKeycloakEvents(control, async (tenant, event, landingId) => {
    if (event.dedupKey === 'id:m-7' && tenant === 'acme') throw new MemoryError('invalid_argument', 'refused');
    await applyToStore(tenant, event, landingId);
  });
  for (const [user, tenant] of [['u-ida', 'acme'], ['u-jo', 'acme'], ['u-jo', 'globex'], ['u-kim', 'acme']] as const) await control.rememberUserTenant(user, tenant);
  await admin.query('alter table kc_organizations drop column deleted_at');
  await admin.query('delete from control_migrations where version = 10');

  expect(await applyMigrations(db.url)).toEqual([10]);
  expect(await userTenantRows('u-ida'), 'deleted: forgotten').toEqual([]);
  expect(await userTenantRows('u-jo'), 'made again after the deletion: kept').toEqual(['acme', 'globex']);
  expect(await userTenantRows('u-kim'), 'its deletion refused somewhere: kept').toEqual(['acme']);
  expect((await admin.query(`select deleted_at is not null as deleted from kc_organizations where org_id = 'org-old'`)).rows).toEqual([{ deleted: true }]);
});

describe('kc_organizations, learned from events delivered to the webhook', () => {
  const secret = 'kc-rows-secret';
  let hook: WebhookServer;
  beforeAll(async () => {
    hook = await startWebhookServer(control, secret);
  });
  afterAll(async () => {
    await hook?.close();
  });
  const deliver = async (json: object) => {
    const body = JSON.stringify(json);
    expect((await hook.post(body, signKeycloakBody(body, secret))).status).toBe(202);
  };
  const orgCreate = (id: string, time: number, orgId: string, alias: string) => ({
    id, time, operationType: 'CREATE', resourceType: 'ORGANIZATION', resourcePath: `organizations/${orgId}`, realmId: 'r',
    representation: JSON.stringify({ id: orgId, alias, name: alias }),
  });
  const orgDelete = (id: string, time: number, orgId: string) => ({
    id, time, operationType: 'DELETE', resourceType: 'ORGANIZATION', resourcePath: `organizations/${orgId}`, realmId: 'r',
  });
  const member = (uid: string, time: number, orgId: string, alias: string, userId: string) => ({
    uid, time, type: 'admin.ORGANIZATION_MEMBERSHIP-CREATE', realmId: 'r', resourcePath: `organizations/${orgId}/members/${userId}`, details: { org_alias: alias },
  });
  const orgRows = async (...orgIds: string[]) => (await admin.query<{ org_id: string; alias: string; deleted: boolean }>(
    'select org_id, alias, deleted_at is not null as deleted from kc_organizations where org_id = any($1::text[]) order by org_id', [orgIds])).rows;
  const ageDeletion = (orgId: string) => admin.query(`update kc_organizations set deleted_at = now() - interval '2 minutes' where org_id = $1`, [orgId]);

  test('a realm holds at most kcOrganizationsMax organizations, deleted ones too until they go: an event naming one more is refused whole, naming the bound; deletions still pass', async () => {
    const reached: string[] = [];
    const refusals: string[] = [];
    const record: ApplyKeycloakEvent = async (tenant, event) => void reached.push(`${tenant}:${event.dedupKey}`);
    const rowsNow = Number((await admin.query<{ n: string }>('select count(*)::text as n from kc_organizations')).rows[0]!.n);
    const passWithin = () => projectKeycloakEvents(control, record, {
      organizationsMax: rowsNow + 2, onRefused: (_id, tenant, error) => refusals.push(`${tenant}: ${(error as Error).message}`),
    });
    // The webhook learns organizations as they land, within the same bound.
    const boundedHook = await startWebhookServer(control, secret, { organizationsMax: rowsNow + 2 });
    onTestFinished(() => boundedHook.close());
    const deliver = async (json: object) => {
      const body = JSON.stringify(json);
      expect((await boundedHook.post(body, signKeycloakBody(body, secret))).status).toBe(202);
    };
    await deliver(orgCreate('q-1', 6_001, 'org-q1', 'q-one'));
    await deliver(orgCreate('q-2', 6_002, 'org-q2', 'q-two'));
    await deliver(member('q-3', 6_003, 'org-q3', 'q-three', 'u-quinn')); // one more: refused
    await deliver(member('q-4', 6_004, 'org-q1', 'q-one', 'u-quinn')); // known: applied
    // A user's deletion naming an organization not known is never refused; its organization is not learned.
    await deliver({ uid: 'q-5', time: 6_005, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-rex', details: { org_alias: 'q-four', org_id: 'org-q4' } });
    expect(await passWithin()).toEqual({ projected: 4, skipped: 1 });
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatch(new RegExp(
      `^q-three: .*kc_organizations holds ${rowsNow + 2} organizations.*kcOrganizationsMax ${rowsNow + 2}.*organization org-q3 \\(q-three\\) would be one more`,
    ));
    expect(reached.filter((r) => r.startsWith('q-three:')), 'nothing of the refused event applied').toEqual([]);
    expect(reached).toContain('q-four:id:q-5');
    expect(await userTenantRows('u-quinn')).toEqual(['q-one']);
    expect((await orgRows('org-q1', 'org-q2', 'org-q3', 'org-q4')).map((r) => r.org_id)).toEqual(['org-q1', 'org-q2']);
    const landing = async (uid: string) => (await admin.query<{ projected: boolean; projection_error: string | null }>(
      `select projected_at is not null as projected, projection_error from kc_event_landing where raw->>'uid' = $1`, [uid])).rows[0]!;
    expect(await landing('q-3'), 'kept for an operator, the bound named').toMatchObject({ projected: true, projection_error: expect.stringMatching(/kcOrganizationsMax/) });

    // A deleted organization's row still counts until it goes with the retention.
    await deliver(orgDelete('q-6', 6_006, 'org-q1'));
    await deliver(member('q-7', 6_007, 'org-q3', 'q-three', 'u-quinn'));
    expect(await passWithin()).toEqual({ projected: 1, skipped: 1 });
    expect(refusals).toHaveLength(2);
    await ageDeletion('org-q1');
    expect((await pruneDeletedOrganizations(control, 60_000)).deleted).toBeGreaterThanOrEqual(1);
    await deliver(member('q-8', 6_008, 'org-q3', 'q-three', 'u-quinn'));
    expect(await passWithin()).toEqual({ projected: 1, skipped: 0 });
    expect(await orgRows('org-q3')).toEqual([{ org_id: 'org-q3', alias: 'q-three', deleted: false }]);
    expect(await userTenantRows('u-quinn')).toEqual(['q-one', 'q-three']);
  });

  test('an event naming an organization only by id, landed before the one naming its alias, reaches the alias\'s tenant however far behind the projector is', async () => {
    const reached: string[] = [];
    const record: ApplyKeycloakEvent = async (tenant, event) => void reached.push(`${tenant}:${event.dedupKey}`);
    // A membership change sent by id alone (no alias anywhere in it), then the organization's update naming both.
    await deliver({ id: 'r-1', time: 8_001, operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: 'organizations/org-r/members/u-rae', realmId: 'r' });
    await deliver({ ...orgCreate('r-2', 8_002, 'org-r', 'rho'), operationType: 'UPDATE' });
    // One event a batch: the id-only one is projected before the projector has seen the other.
    expect(await projectKeycloakEvents(control, record, { batchMax: 1 })).toEqual({ projected: 2, skipped: 0 });
    expect(reached).toEqual(['rho:id:r-1', 'rho:id:r-2']);
  });

  test('an event naming an organization with an empty alias leaves the known alias, so its id-only events still reach its tenant', async () => {
    const reached: string[] = [];
    const record: ApplyKeycloakEvent = async (tenant, event) => void reached.push(`${tenant}:${event.dedupKey}`);
    await deliver(orgCreate('e-1', 8_101, 'org-e', 'echo'));
    await deliver({ uid: 'e-2', time: 8_102, type: 'access.LOGIN', realmId: 'r', userId: 'u-eve', details: { org_id: 'org-e', org_alias: '' } });
    await deliver({ id: 'e-3', time: 8_103, operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: 'organizations/org-e/members/u-eve', realmId: 'r' });
    await project(record);
    expect(await orgRows('org-e')).toEqual([{ org_id: 'org-e', alias: 'echo', deleted: false }]);
    expect(reached).toContain('echo:id:e-3');
  });

  test('a late event naming a deleted organization by id and alias brings its row back marked deleted (it goes with the retention); once that row went, the organization made again is known unmarked', async () => {
    const reached: string[] = [];
    const record: ApplyKeycloakEvent = async (tenant, event) => void reached.push(`${tenant}:${event.dedupKey}`);
    // Deleted before any event named it with its alias: no row to mark.
    await deliver(orgDelete('g-1', 7_010, 'org-gone'));
    await project(record);
    expect(await orgRows('org-gone')).toEqual([]);
    // Delivered late, older than the deletion (a retried membership).
    await deliver(member('g-2', 7_005, 'org-gone', 'gone', 'u-sal'));
    await project(record);
    expect(reached).toContain('gone:id:g-2');
    expect(await orgRows('org-gone'), 'marked: it goes with the retention').toEqual([{ org_id: 'org-gone', alias: 'gone', deleted: true }]);
    await ageDeletion('org-gone');
    await pruneDeletedOrganizations(control, 60_000);
    expect(await orgRows('org-gone')).toEqual([]);

    // The same id made again after the deletion (an import): known, not marked.
    await deliver(orgCreate('g-3', 7_020, 'org-gone', 'gone'));
    await project(record);
    expect(await orgRows('org-gone')).toEqual([{ org_id: 'org-gone', alias: 'gone', deleted: false }]);
  });

  test('an organization made again with the same id while its deleted row is still kept is unmarked by its newer event (it no longer goes with the retention); a late older event leaves the mark', async () => {
    const reached: string[] = [];
    const record: ApplyKeycloakEvent = async (tenant, event) => void reached.push(`${tenant}:${event.dedupKey}`);
    await deliver(orgCreate('h-1', 7_100, 'org-again', 'again'));
    await deliver(orgDelete('h-2', 7_110, 'org-again'));
    await project(record);
    expect(await orgRows('org-again')).toEqual([{ org_id: 'org-again', alias: 'again', deleted: true }]);
    // Older than the deletion, delivered after it: the organization is still deleted.
    await deliver(member('h-3', 7_105, 'org-again', 'again', 'u-tom'));
    await project(record);
    expect(await orgRows('org-again')).toEqual([{ org_id: 'org-again', alias: 'again', deleted: true }]);
    // Made again (an import keeping its id), within the retention: its row is live again...
    await deliver(orgCreate('h-4', 7_120, 'org-again', 'again'));
    await project(record);
    expect(await orgRows('org-again')).toEqual([{ org_id: 'org-again', alias: 'again', deleted: false }]);
    // ...so the retention keeps it, and its id-only events keep reaching its tenant.
    await pruneDeletedOrganizations(control, 60_000);
    expect(await orgRows('org-again')).toEqual([{ org_id: 'org-again', alias: 'again', deleted: false }]);
    await deliver({ id: 'h-5', time: 7_130, operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: 'organizations/org-again/members/u-uma', realmId: 'r' });
    await project(record);
    expect(reached).toContain('again:id:h-5');
  });

  test('an organization made again whose newer events are projected before its older deletion lands stays live; a row no event has timed (from before migration 12) is marked by any deletion', async () => {
    const reached: string[] = [];
    const record: ApplyKeycloakEvent = async (tenant, event) => void reached.push(`${tenant}:${event.dedupKey}`);
    await deliver(orgCreate('k-1', 7_200, 'org-late-delete', 'late-delete'));
    await project(record);
    // Keycloak deleted it at 7_210 and an import made it again at 7_220; the deletion is delivered last (a retried webhook).
    await deliver(orgCreate('k-3', 7_220, 'org-late-delete', 'late-delete'));
    await project(record);
    await deliver(orgDelete('k-2', 7_210, 'org-late-delete'));
    await project(record);
    expect(await orgRows('org-late-delete'), 'the organization lives: its row is not marked').toEqual([{ org_id: 'org-late-delete', alias: 'late-delete', deleted: false }]);
    // A late event older than the deletion changes nothing; the retention keeps the row, and id-only events reach its tenant.
    await deliver(member('k-4', 7_205, 'org-late-delete', 'late-delete', 'u-vic'));
    await project(record);
    await pruneDeletedOrganizations(control, 60_000);
    expect(await orgRows('org-late-delete')).toEqual([{ org_id: 'org-late-delete', alias: 'late-delete', deleted: false }]);
    await deliver({ id: 'k-5', time: 7_230, operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: 'organizations/org-late-delete/members/u-wes', realmId: 'r' });
    await project(record);
    expect(reached).toContain('late-delete:id:k-5');
    // A deletion newer than every event that named it marks the row.
    await deliver(orgDelete('k-6', 7_240, 'org-late-delete'));
    await project(record);
    expect(await orgRows('org-late-delete')).toEqual([{ org_id: 'org-late-delete', alias: 'late-delete', deleted: true }]);

    // A row from before migration 12 has no named time: a deletion marks it, whatever its time.
    await deliver(orgCreate('k-7', 7_300, 'org-untimed', 'untimed'));
    await project(record);
    await admin.query(`update kc_organizations set named_ms = null where org_id = 'org-untimed'`);
    await deliver(orgDelete('k-8', 7_250, 'org-untimed'));
    await project(record);
    expect(await orgRows('org-untimed')).toEqual([{ org_id: 'org-untimed', alias: 'untimed', deleted: true }]);
  });
});
