import { afterEach, beforeEach, expect, test } from 'vitest';
import { kcUserListedMax } from '../../tools/kc.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

const projector = { tenant: 'acme', subject: 'kc-projector' };
const admin = { tenant: 'acme', subject: 'admin' };
const userId = '5f1c2a4e-0d6b-4c1e-9a53-1b2c3d4e5f60';

function apply(landing: string, event: Record<string, unknown>) {
  return f.memory.store.call<{ landing_id: string; applied: boolean; effect: string }>('kc_apply_event', { landing_id: landing, event }, projector);
}

const user = () => f.call('kc_user_get', { user_id: userId }, admin);

test('stock user events project a user: register, profile and email updates, verification', async () => {
  const registered = await apply('l1', { type: 'REGISTER', realmId: 'r', clientId: 'app', userId, time: 1, details: { username: 'ann', email: 'ann@x.org', first_name: 'Ann', last_name: 'Lee' } });
  expect(registered.result).toEqual({ landing_id: 'l1', applied: true, effect: 'user registered' });
  expect(await user()).toEqual({
    user_id: userId, username: 'ann', email: 'ann@x.org', first_name: 'Ann', last_name: 'Lee', enabled: true, email_verified: false,
    memberships: [], roles: [], memberships_truncated: false, roles_truncated: false,
  });
  await apply('l2', { type: 'UPDATE_PROFILE', userId, details: { previous_first_name: 'Ann', updated_first_name: 'Anna' } });
  await apply('l3', { type: 'access.UPDATE_EMAIL', uid: 'x', userId, details: { previous_email: 'ann@x.org', updated_email: 'anna@x.org' } });
  await apply('l4', { type: 'VERIFY_EMAIL', userId, details: {} });
  expect(await user()).toMatchObject({ first_name: 'Anna', last_name: 'Lee', email: 'anna@x.org', email_verified: true });
  expect((await apply('l5', { type: 'LOGIN', userId })).result.effect).toMatch(/^ignored/);
});

test('admin events project users, group and organization memberships, realm and client role grants', async () => {
  await apply('a1', {
    operationType: 'CREATE', resourceType: 'USER', resourcePath: `users/${userId}`,
    representation: JSON.stringify({ username: 'bo', email: 'bo@x.org', firstName: 'Bo', enabled: true, emailVerified: true }),
  });
  await apply('a2', { operationType: 'CREATE', resourceType: 'GROUP_MEMBERSHIP', resourcePath: `users/${userId}/groups/g-1`, representation: JSON.stringify({ id: 'g-1', name: 'ops', path: '/ops' }) });
  await apply('a3', { operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: `organizations/org-1/members/${userId}` });
  await apply('a4', { operationType: 'CREATE', resourceType: 'REALM_ROLE_MAPPING', resourcePath: `users/${userId}/role-mappings/realm`, representation: JSON.stringify([{ id: 'r1', name: 'writer' }, { id: 'r2', name: 'auditor' }]) });
  await apply('a5', { type: 'admin.CLIENT_ROLE_MAPPING-CREATE', uid: 'e5', resourcePath: `users/${userId}/role-mappings/clients/c-9`, representation: JSON.stringify([{ name: 'memory-admin' }]) });
  expect(await user()).toEqual({
    user_id: userId, username: 'bo', email: 'bo@x.org', first_name: 'Bo', last_name: null, enabled: true, email_verified: true,
    memberships: [{ kind: 'group', scope_id: 'g-1', scope_name: '/ops' }, { kind: 'organization', scope_id: 'org-1', scope_name: null }],
    roles: [{ client: '', role: 'auditor' }, { client: '', role: 'writer' }, { client: 'c-9', role: 'memory-admin' }],
    memberships_truncated: false, roles_truncated: false,
  });
  await apply('a6', { operationType: 'DELETE', resourceType: 'REALM_ROLE_MAPPING', resourcePath: `users/${userId}/role-mappings/realm`, representation: JSON.stringify([{ name: 'auditor' }]) });
  await apply('a7', { operationType: 'DELETE', resourceType: 'GROUP_MEMBERSHIP', resourcePath: `users/${userId}/groups/g-1` });
  await apply('a8', { operationType: 'UPDATE', resourceType: 'USER', resourcePath: `users/${userId}`, representation: JSON.stringify({ enabled: false }) });
  expect(await user()).toMatchObject({
    username: 'bo', enabled: false,
    memberships: [{ kind: 'organization', scope_id: 'org-1' }],
    roles: [{ client: '', role: 'writer' }, { client: 'c-9', role: 'memory-admin' }],
  });
  await apply('a9', { operationType: 'DELETE', resourceType: 'USER', resourcePath: `users/${userId}` });
  await expectRefused(f, user(), 'not_found');
  const left = await f.memory.store.read((v) => v.table('kc_memberships').size + v.table('kc_role_grants').size);
  expect(left).toBe(0);
});

test('an admin event is applied to the user the projector routes it by: a URI-encoded id decoded, an organization member named by a bare id', async () => {
  const encoded = 'ann@x.org';
  expect((await apply('e1', { operationType: 'CREATE', resourceType: 'USER', resourcePath: `users/${encodeURIComponent(encoded)}`, representation: JSON.stringify({ username: 'ann' }) })).result.effect).toBe('user created');
  expect(await f.call('kc_user_get', { user_id: encoded }, admin)).toMatchObject({ user_id: encoded, username: 'ann' });
  expect((await apply('e2', { operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: 'organizations/org-2/members', representation: JSON.stringify(userId) })).result.effect).toBe('organization membership added');
  expect((await apply('e3', { operationType: 'CREATE', resourceType: 'USER', resourcePath: 'users/%E0%A4%A' })).result.effect).toMatch(/^ignored/);
});

test('re-applying a landing is a no-op that changes no row, also after a restart', async () => {
  const event = { type: 'REGISTER', userId, details: { username: 'ann' } };
  await apply('same', event);
  const before = f.mark();
  const changed: string[] = [];
  f.memory.store.onCommit((txs) => changed.push(...txs.flatMap((t) => t.changes.map((c) => c.table))));
  const again = await apply('same', { type: 'DELETE_ACCOUNT', userId });
  expect(again.result).toEqual({ landing_id: 'same', applied: false, effect: 'user registered' });
  expect(f.memory.store.stateHash()).toBe(before.hash);
  expect(changed).toEqual([]);
  await f.reopen();
  expect((await apply('same', event)).result.applied).toBe(false);
  expect(f.memory.store.stateHash()).toBe(before.hash);
  expect(await user()).toMatchObject({ username: 'ann' });
});

test('unusable events are recorded as ignored (never retried forever); a malformed call is invalid_argument', async () => {
  expect((await apply('b1', { operationType: 'CREATE', resourceType: 'USER', resourcePath: '../../etc' })).result.effect).toMatch(/^ignored/);
  expect((await apply('b2', { operationType: 'CREATE', resourceType: 'REALM_ROLE_MAPPING', resourcePath: 'groups/g/role-mappings/realm', representation: '[]' })).result.effect).toMatch(/^ignored/);
  expect((await apply('b3', { something: 'else' })).result.effect).toMatch(/^ignored/);
  expect((await apply('b4', { type: 'REGISTER' })).result.effect).toMatch(/^ignored/);
  expect((await apply('b5', { operationType: 'CREATE', resourceType: 'USER', resourcePath: `users/${userId}`, representation: '{not json' })).result.effect).toBe('user created');
  await expectRefused(f, apply('bad landing id!', { type: 'REGISTER', userId }), 'invalid_argument');
  await expectRefused(f, f.memory.store.call('kc_apply_event', { landing_id: 'x' }, projector), 'invalid_argument');
});

test('kc_users_list pages users by id', async () => {
  for (let i = 0; i < 5; i++) await apply(`u${i}`, { type: 'REGISTER', userId: `user-${i}`, details: { username: `n${i}` } });
  const first = await f.call('kc_users_list', { limit: 3 }, admin);
  const rest = await f.call('kc_users_list', { limit: 3, cursor: first.next_cursor }, admin);
  expect([...first.users, ...rest.users].map((u: { user_id: string }) => u.user_id)).toEqual(['user-0', 'user-1', 'user-2', 'user-3', 'user-4']);
  expect(rest.next_cursor).toBeUndefined();
});

test('kc_user_get lists a user with many memberships and role grants in one result, saying when it lists fewer than there are', async () => {
  // Group paths of 512 characters of 3 UTF-8 bytes each: 200 of them are more than one result holds.
  const groupPath = (i: number) => `/${String(i).padStart(3, '0')}${'日'.repeat(508)}`;
  await apply('r0', { type: 'REGISTER', userId, details: { username: 'ann' } });
  await Promise.all(Array.from({ length: 210 }, (_, i) => apply(`g${i}`, {
    operationType: 'CREATE', resourceType: 'GROUP_MEMBERSHIP', resourcePath: `users/${userId}/groups/g-${String(i).padStart(3, '0')}`,
    representation: JSON.stringify({ path: groupPath(i) }),
  })));
  await apply('roles', {
    operationType: 'CREATE', resourceType: 'REALM_ROLE_MAPPING', resourcePath: `users/${userId}/role-mappings/realm`,
    representation: JSON.stringify(Array.from({ length: 5 }, (_, i) => ({ name: `role-${i}` }))),
  });
  const got = await user();
  expect(got.memberships_truncated).toBe(true);
  expect(got.memberships.length).toBeGreaterThan(0);
  expect(got.memberships.length).toBeLessThan(210);
  // The first ones, in order, each whole.
  expect(got.memberships).toEqual(got.memberships.map((_: unknown, i: number) => ({ kind: 'group', scope_id: `g-${String(i).padStart(3, '0')}`, scope_name: groupPath(i) })));
  expect(got.roles).toEqual(Array.from({ length: 5 }, (_, i) => ({ client: '', role: `role-${i}` })));
  expect(got.roles_truncated).toBe(false);
  // Short names: up to kcUserListedMax of each.
  const other = 'short-user';
  await Promise.all(Array.from({ length: kcUserListedMax + 1 }, (_, i) => apply(`s${i}`, {
    operationType: 'CREATE', resourceType: 'GROUP_MEMBERSHIP', resourcePath: `users/${other}/groups/g${String(i).padStart(3, '0')}`,
  })));
  await apply('s-roles', {
    operationType: 'CREATE', resourceType: 'REALM_ROLE_MAPPING', resourcePath: `users/${other}/role-mappings/realm`,
    representation: JSON.stringify(Array.from({ length: kcUserListedMax }, (_, i) => ({ name: `r${String(i).padStart(3, '0')}` }))),
  });
  await apply('s-user', { operationType: 'CREATE', resourceType: 'USER', resourcePath: `users/${other}`, representation: JSON.stringify({ username: 'sam' }) });
  const short = await f.call('kc_user_get', { user_id: other }, admin);
  expect(short.memberships).toHaveLength(kcUserListedMax);
  expect(short.memberships_truncated).toBe(true);
  expect(short.roles).toHaveLength(kcUserListedMax);
  expect(short.roles_truncated).toBe(false);
});

test('events of the same Keycloak time are ordered by event id: the larger id wins whichever arrives first', async () => {
  const rename = (id: string, user: string, firstName: string) => ({
    id, time: 10, operationType: 'UPDATE', resourceType: 'USER', resourcePath: `users/${user}`, representation: JSON.stringify({ firstName }),
  });
  await apply('t1', rename('e-b', 'tie-1', 'B'));
  expect((await apply('t2', rename('e-a', 'tie-1', 'A'))).result.effect).toMatch(/^ignored: user updated, older than the user's newest change at 10 \(id:e-b\)/);
  await apply('t3', rename('e-a', 'tie-2', 'A'));
  await apply('t4', rename('e-b', 'tie-2', 'B'));
  const firstNames = await f.memory.store.read((v) => ['tie-1', 'tie-2'].map((u) => v.table('kc_users').get([u])?.['first_name']));
  expect(firstNames).toEqual(['B', 'B']);
});
