/**
 * Keycloak events from the webhook to a real tenant store: signed deliveries (one of them
 * twice) land once, and the projector applies each through the `kc_apply_event` system
 * reducer exactly once, including across a crash between applying and marking projected.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { signKeycloakBody } from '../../storage/control/keycloak-event.js';
import { projectKeycloakEvents, type ApplyKeycloakEvent } from '../../storage/control/keycloak-projector.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import pg from 'pg';
import { applyMigrations } from '../../storage/control/migrations.js';
import { Store } from '../../storage/store.js';
import { memoryTools, openTenantMemory } from '../../tools/index.js';
import { kcApplyEventKeeping, kcTables } from '../../tools/kc.js';
import type { TenantMemory } from '../../tools/memory.js';
import { freshPostgresDatabase } from '../support/services.js';
import { startWebhookServer, type WebhookServer } from './webhook-server.js';

const secret = 'projection-secret';
let dir: string;
let control: ControlPlane;
let drop: () => Promise<void>;
let databaseUrl: string;
let memory: TenantMemory;
let server: WebhookServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ioboxx-kc-projection-'));
  const db = await freshPostgresDatabase('kcproj');
  drop = db.drop;
  databaseUrl = db.url;
  control = await openControlPlane({ databaseUrl: db.url });
  memory = await openTenantMemory(join(dir, 'acme'), 'acme');
  server = await startWebhookServer(control, secret);
});

afterAll(async () => {
  await server?.close();
  await memory?.close();
  await control?.close();
  await drop?.();
  await rm(dir, { recursive: true, force: true });
});

async function deliver(event: object): Promise<number> {
  const body = JSON.stringify(event);
  return (await server.post(body, signKeycloakBody(body, secret))).status;
}

test('each landed event reaches the tenant store exactly once, across a crash between apply and mark', async () => {
  const register = { uid: 'kc-1', time: 1000, type: 'access.REGISTER', realmId: 'r', userId: 'u1', details: { org_alias: 'acme', username: 'ann', email: 'ann@example.test' } };
  const verify = { uid: 'kc-2', time: 2000, type: 'access.VERIFY_EMAIL', realmId: 'r', userId: 'u1', details: { org_alias: 'acme' } };
  expect(await deliver(register)).toBe(202);
  expect(await deliver(register)).toBe(202); // Keycloak's sender retried
  expect(await deliver(verify)).toBe(202);

  const effects: boolean[] = [];
  let crashAfterFirst = true;
  const apply: ApplyKeycloakEvent = async (tenant, event, landingId) => {
    expect(tenant).toBe('acme');
    const result = await memory.store.call<{ applied: boolean }>(
      'kc_apply_event',
      { landing_id: String(landingId), event: event.raw },
      systemCaller(tenant, 'kc-projector'),
    );
    effects.push(result.result.applied);
    if (crashAfterFirst) {
      crashAfterFirst = false;
      throw new Error('crash after the store committed, before the landing was marked');
    }
  };
  await expect(projectKeycloakEvents(control, apply)).rejects.toThrow('crash after the store committed');
  expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 2, skipped: 0 });
  expect(effects).toEqual([true, false, true]); // the re-applied landing was a no-op

  const users = await memory.store.read((view) => [...view.table('kc_users').scan()]);
  expect(users).toEqual([expect.objectContaining({ user_id: 'u1', username: 'ann', email: 'ann@example.test', email_verified: true })]);
  expect(await memory.store.read((view) => view.table('kc_landings').size)).toBe(2);
  expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 0, skipped: 0 });
});

test('an event its tenant refuses for good (nested too deep for the store) is marked with the reason and the next one is applied', async () => {
  const depth = 3_000;
  const deep = JSON.parse(`{"uid":"kc-deep","time":3000,"type":"access.REGISTER","userId":"u-deep","details":{"org_alias":"acme"},"extra":${'['.repeat(depth)}${']'.repeat(depth)}}`);
  // Landed before the webhook refused such events (or by another node): straight into the landing table.
  await control.landKeycloakEvent({ dedupKey: 'id:kc-deep', tenant: 'acme', kind: 'user', eventType: 'REGISTER', eventTimeMs: 3000, raw: deep });
  expect(await deliver({ uid: 'kc-after', time: 3001, type: 'access.REGISTER', realmId: 'r', userId: 'u-after', details: { org_alias: 'acme', username: 'after' } })).toBe(202);

  const refused: Array<[string, string]> = [];
  const apply: ApplyKeycloakEvent = async (tenant, event, landingId) => {
    await memory.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
  };
  const result = await projectKeycloakEvents(control, apply, { onRefused: (_id, tenant, error) => refused.push([tenant, (error as Error).name]) });
  expect(result).toEqual({ projected: 1, skipped: 1 });
  expect(refused).toEqual([['acme', 'RangeError']]);
  expect(await control.pendingKeycloakEvents(10)).toEqual([]);
  const users = await memory.store.read((view) => [...view.table('kc_users').scan()].map((u) => u.user_id));
  expect(users).toContain('u-after');
  expect(users).not.toContain('u-deep');
});

test('an event naming no organization (a user disabled, then deleting their account) reaches every tenant the user is known in', async () => {
  expect(await deliver({ uid: 'kc-carol-1', time: 4000, type: 'access.REGISTER', realmId: 'r', userId: 'u-carol', details: { org_alias: 'acme', username: 'carol' } })).toBe(202);
  expect(await deliver({
    id: 'kc-carol-2', time: 4001, realmId: 'r', authDetails: { realmId: 'r', userId: 'admin' }, operationType: 'UPDATE', resourceType: 'USER',
    resourcePath: 'users/u-carol', representation: JSON.stringify({ id: 'u-carol', username: 'carol', enabled: false }),
  })).toBe(202);
  const reached: string[] = [];
  const apply: ApplyKeycloakEvent = async (tenant, event, landingId) => {
    reached.push(`${tenant}:${event.type}`);
    await memory.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
  };
  expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 2, skipped: 0 });
  expect(reached).toEqual(['acme:REGISTER', 'acme:USER-UPDATE']);
  const carol = () => memory.store.read((view) => [...view.table('kc_users').scan()].find((u) => u.user_id === 'u-carol'));
  expect(await carol()).toMatchObject({ enabled: false });

  expect(await deliver({ uid: 'kc-carol-3', time: 4002, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-carol', details: {} })).toBe(202);
  expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 1, skipped: 0 });
  expect(await carol()).toBeUndefined();
  // A user no tenant knows: nothing to reach, marked.
  expect(await deliver({ uid: 'kc-nobody', time: 4003, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-nobody', details: {} })).toBe(202);
  expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 0, skipped: 1 });
});

// The projection followed arrival order: a late event older than a deletion brought the user,
// membership or grant back (seen on a real store), and a newer event arriving first was undone.
describe('events arriving out of Keycloak time order project the state at the newest event', () => {
  const projectAll = () => projectKeycloakEvents(control, async (tenant, event, landingId) => {
    await memory.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
  });
  const userRow = (userId: string) => memory.store.read((view) => view.table('kc_users').get([userId]));
  const org = { org_alias: 'acme' };

  test('a user deleted at t=5 stays deleted when an update of t=3 arrives after; an update of t=7 brings the user back with only what it sets', async () => {
    expect(await deliver({ uid: 'ord-u-1', time: 5_000_001, type: 'access.REGISTER', realmId: 'r', userId: 'u-ord', details: { ...org, username: 'ord', email: 'ord@x.org' } })).toBe(202);
    expect(await deliver({ uid: 'ord-u-5', time: 5_000_005, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-ord', details: org })).toBe(202);
    expect(await deliver({ uid: 'ord-u-3', time: 5_000_003, type: 'access.UPDATE_PROFILE', realmId: 'r', userId: 'u-ord', details: { ...org, updated_first_name: 'Late' } })).toBe(202);
    await projectAll();
    expect(await userRow('u-ord')).toBeUndefined();
    expect(await memory.store.read((view) => view.table('kc_deletions').get(['u-ord', 'user', '', '']))).toMatchObject({ event_time_ms: 5_000_005, event_key: 'id:ord-u-5' });

    expect(await deliver({ uid: 'ord-u-7', time: 5_000_007, type: 'access.UPDATE_EMAIL', realmId: 'r', userId: 'u-ord', details: { ...org, updated_email: 'new@x.org' } })).toBe(202);
    await projectAll();
    expect(await userRow('u-ord')).toMatchObject({ username: 'u-ord', email: 'new@x.org', first_name: null, updated_at_ms: 5_000_007 });
  });

  test('an older email change arriving after a newer verification still sets the email, and the verification stays', async () => {
    expect(await deliver({ uid: 'ord-e-1', time: 5_100_001, type: 'access.REGISTER', realmId: 'r', userId: 'u-mail', details: { ...org, username: 'mail', email: 'old@x.org' } })).toBe(202);
    expect(await deliver({ uid: 'ord-e-3', time: 5_100_003, type: 'access.VERIFY_EMAIL', realmId: 'r', userId: 'u-mail', details: org })).toBe(202);
    expect(await deliver({ uid: 'ord-e-2', time: 5_100_002, type: 'access.UPDATE_EMAIL', realmId: 'r', userId: 'u-mail', details: { ...org, updated_email: 'new@x.org' } })).toBe(202);
    await projectAll();
    expect(await userRow('u-mail')).toMatchObject({ username: 'mail', email: 'new@x.org', email_verified: true, updated_at_ms: 5_100_003 });
  });

  test('a membership or role grant removed at t=5 stays removed when its addition of t=3 arrives after; a user deleted at t=9 is not given an older membership back', async () => {
    const membership = (op: string, uid: string, time: number) => ({
      uid, time, type: `admin.ORGANIZATION_MEMBERSHIP-${op}`, realmId: 'r', resourcePath: 'organizations/acme-id/members/u-mem', details: org,
    });
    const grant = (op: string, uid: string, time: number) => ({
      uid, time, type: `admin.REALM_ROLE_MAPPING-${op}`, realmId: 'r', resourcePath: 'users/u-mem/role-mappings/realm', representation: '[{"name":"writer"}]', details: org,
    });
    expect(await deliver({ uid: 'ord-m-0', time: 5_200_000, type: 'access.REGISTER', realmId: 'r', userId: 'u-mem', details: { ...org, username: 'mem' } })).toBe(202);
    expect(await deliver(membership('DELETE', 'ord-m-5', 5_200_005))).toBe(202);
    expect(await deliver(grant('DELETE', 'ord-g-5', 5_200_005))).toBe(202);
    expect(await deliver(membership('CREATE', 'ord-m-3', 5_200_003))).toBe(202);
    expect(await deliver(grant('CREATE', 'ord-g-3', 5_200_003))).toBe(202);
    await projectAll();
    const of = () => memory.store.read((view) => ({
      memberships: [...view.table('kc_memberships').scan({ prefix: ['u-mem'] })].map((m) => m['scope_id']),
      grants: [...view.table('kc_role_grants').scan({ prefix: ['u-mem'] })].map((g) => g['role']),
    }));
    expect(await of()).toEqual({ memberships: [], grants: [] });

    // Added again at t=7, the user deleted at t=9, then an addition of t=8 arrives: the deletion covers it.
    expect(await deliver(membership('CREATE', 'ord-m-7', 5_200_007))).toBe(202);
    expect(await deliver(grant('CREATE', 'ord-g-7', 5_200_007))).toBe(202);
    await projectAll();
    expect(await of()).toEqual({ memberships: ['acme-id'], grants: ['writer'] });
    expect(await deliver({ id: 'ord-d-9', time: 5_200_009, operationType: 'DELETE', resourceType: 'USER', resourcePath: 'users/u-mem', details: org })).toBe(202);
    expect(await deliver(membership('CREATE', 'ord-m-8', 5_200_008))).toBe(202);
    expect(await deliver(grant('CREATE', 'ord-g-8', 5_200_008))).toBe(202);
    await projectAll();
    expect(await of()).toEqual({ memberships: [], grants: [] });
    expect(await userRow('u-mem')).toBeUndefined();
  });

  test('past kcDeletionsMax the oldest deletions are forgotten, and an event not newer than them is refused with the reason, not applied', async () => {
    const deletionsMax = 2;
    const small = await Store.open({ dir: join(dir, 'small-bound'), module: { tables: kcTables, reducers: [kcApplyEventKeeping({ deletionsMax })] } });
    try {
      const refused: string[] = [];
      const project = () => projectKeycloakEvents(control, async (tenant, event, landingId) => {
        await small.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
      }, { onRefused: (_id, _tenant, error) => refused.push((error as Error).message) });
      const group = (op: string, uid: string, time: number, groupId: string) => ({
        uid, time, type: `admin.GROUP_MEMBERSHIP-${op}`, realmId: 'r', resourcePath: `users/u-h/groups/${groupId}`, details: org,
      });
      for (const [i, g] of ['g1', 'g2', 'g3'].entries()) expect(await deliver(group('DELETE', `hz-${g}`, 5_300_010 + i, g))).toBe(202);
      expect(await project()).toEqual({ projected: 3, skipped: 0 });
      expect(await small.read((view) => [view.table('kc_deletions').size, view.table('kc_horizon').get(['deletions'])]))
        .toEqual([deletionsMax, expect.objectContaining({ event_time_ms: 5_300_010, event_key: 'id:hz-g1', forgotten: 1 })]);

      // g1's removal is forgotten: an addition of g1 older than it might bring it back, so it is refused.
      expect(await deliver(group('CREATE', 'hz-g1-late', 5_300_009, 'g1'))).toBe(202);
      expect(await deliver(group('CREATE', 'hz-g4-new', 5_300_020, 'g4'))).toBe(202);
      expect(await project()).toEqual({ projected: 1, skipped: 1 });
      expect(refused).toEqual([expect.stringMatching(/not newer than the deletion horizon 5300010 .*kcDeletionsMax/)]);
      expect(await small.read((view) => [...view.table('kc_memberships').scan()].map((m) => m['scope_id']))).toEqual(['g4']);
    } finally {
      await small.close();
    }
  });
});

// An event naming no organization (an admin's USER-CREATE, a realm-wide DELETE_ACCOUNT) reached
// only the tenants the user was known in then: none, for a user not yet a member anywhere.
describe('a tenant a user becomes known in gets their earlier events that name no organization', () => {
  const projectAll = () => projectKeycloakEvents(control, async (tenant, event, landingId) => {
    await memory.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
  });
  const kcUserGet = memoryTools.find((t) => t.name === 'kc_user_get')!;
  const userGet = (userId: string) => kcUserGet.call({ memory, caller: { tenant: 'acme', subject: 'admin' } }, { user_id: userId } as never);
  const joinAcme = (uid: string, time: number, userId: string) => ({
    uid, time, type: 'admin.ORGANIZATION_MEMBERSHIP-CREATE', realmId: 'r', resourcePath: `organizations/acme-id/members/${userId}`, details: { org_alias: 'acme' },
  });

  test('a user created with no organization, then made a member of one: that tenant gets the user (kc_user_get finds them)', async () => {
    expect(await deliver({
      id: 'intro-1', time: 6_000_001, operationType: 'CREATE', resourceType: 'USER', resourcePath: 'users/u-intro', realmId: 'r',
      representation: JSON.stringify({ username: 'intro', email: 'intro@x.org', enabled: true }),
    })).toBe(202);
    expect(await projectAll()).toEqual({ projected: 0, skipped: 1 }); // known nowhere yet
    expect(await deliver(joinAcme('intro-2', 6_000_002, 'u-intro'))).toBe(202);
    expect(await projectAll()).toEqual({ projected: 1, skipped: 0 });
    expect(await userGet('u-intro')).toMatchObject({ username: 'intro', email: 'intro@x.org', memberships: [{ kind: 'organization', scope_id: 'acme-id' }] });
  });

  test('a user deleted realm-wide before the event that makes them known in a tenant landed does not appear there', async () => {
    expect(await deliver({ uid: 'gone-5', time: 6_100_005, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'u-gone', details: {} })).toBe(202);
    expect(await deliver({ uid: 'gone-1', time: 6_100_001, type: 'access.REGISTER', realmId: 'r', userId: 'u-gone', details: { org_alias: 'acme', username: 'gone' } })).toBe(202);
    await projectAll();
    expect(await memory.store.read((view) => view.table('kc_users').get(['u-gone']))).toBeUndefined();
  });

  test('the history given to a tenant is the newest userHistoryMax events; a cut is reported and what only older ones set is missing there', async () => {
    const userEvent = (id: string, time: number, operationType: string, representation: object) => ({
      id, time, operationType, resourceType: 'USER', resourcePath: 'users/u-long', realmId: 'r', representation: JSON.stringify(representation),
    });
    expect(await deliver(userEvent('long-1', 6_050_001, 'CREATE', { username: 'long', email: 'a@x.org' }))).toBe(202);
    expect(await deliver(userEvent('long-2', 6_050_002, 'UPDATE', { email: 'b@x.org' }))).toBe(202);
    expect(await deliver(userEvent('long-3', 6_050_003, 'UPDATE', { firstName: 'Lo' }))).toBe(202);
    await projectAll();
    expect(await deliver(joinAcme('long-4', 6_050_004, 'u-long'))).toBe(202);
    const cuts: Array<[string, string, number]> = [];
    await projectKeycloakEvents(control, async (tenant, event, landingId) => {
      await memory.store.call('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
    }, { userHistoryMax: 2, onUserHistoryCut: (user, tenant, replayed) => cuts.push([user, tenant, replayed]) });
    expect(cuts).toEqual([['u-long', 'acme', 2]]);
    // The CREATE (t=1) was not replayed: its username is missing, the newer email and first name are there.
    expect(await userGet('u-long')).toMatchObject({ username: 'u-long', email: 'b@x.org', first_name: 'Lo' });
  });

  test('a crash after the history was given, before the user was remembered: the next pass gives it again as no-ops and applies the event once', async () => {
    expect(await deliver({
      id: 'crash-1', time: 6_060_001, operationType: 'CREATE', resourceType: 'USER', resourcePath: 'users/u-crash', realmId: 'r',
      representation: JSON.stringify({ username: 'crash' }),
    })).toBe(202);
    await projectAll();
    expect(await deliver(joinAcme('crash-2', 6_060_002, 'u-crash'))).toBe(202);
    const applied: Array<[string, boolean]> = [];
    let crash = true;
    const apply: ApplyKeycloakEvent = async (tenant, event, landingId) => {
      const result = await memory.store.call<{ applied: boolean }>('kc_apply_event', { landing_id: String(landingId), event: event.raw }, systemCaller(tenant, 'kc-projector'));
      applied.push([event.type, result.result.applied]);
      if (crash && event.type === 'ORGANIZATION_MEMBERSHIP-CREATE') {
        crash = false;
        throw new Error('crash after the store committed, before the user was remembered');
      }
    };
    await expect(projectKeycloakEvents(control, apply)).rejects.toThrow('crash after the store committed');
    expect(await control.userKnownIn('u-crash', 'acme')).toBe(false);
    expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 1, skipped: 0 });
    expect(applied).toEqual([
      ['USER-CREATE', true], ['ORGANIZATION_MEMBERSHIP-CREATE', true], // the pass that crashed
      ['USER-CREATE', false], ['ORGANIZATION_MEMBERSHIP-CREATE', false], // again: no-ops
    ]);
    expect(await control.userKnownIn('u-crash', 'acme')).toBe(true);
    expect(await userGet('u-crash')).toMatchObject({ username: 'crash', memberships: [{ kind: 'organization', scope_id: 'acme-id' }] });
  });

  test('migration 7 records the user of events landed before it, so they reach a tenant the user joins after the upgrade', async () => {
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    try {
      // The database as migration 6 left it, an event about u-legacy landed then (no subject recorded).
      await admin.query('drop index kc_event_landing_user_history');
      await admin.query('alter table kc_event_landing drop column subject_user');
      await admin.query('delete from control_migrations where version = 7');
      await admin.query(
        `insert into kc_event_landing (dedup_key, tenant, kind, event_type, event_time_ms, raw) values ($1, null, 'admin', 'USER-CREATE', 6200001, $2::json)`,
        ['id:legacy-1', JSON.stringify({ id: 'legacy-1', time: 6_200_001, operationType: 'CREATE', resourceType: 'USER', resourcePath: 'users/u-legacy', representation: '{"username":"legacy"}' })],
      );
      expect(await applyMigrations(databaseUrl)).toEqual([7]);
    } finally {
      await admin.end();
    }
    await projectAll();
    expect(await deliver(joinAcme('legacy-2', 6_200_002, 'u-legacy'))).toBe(202);
    await projectAll();
    expect(await userGet('u-legacy')).toMatchObject({ username: 'legacy' });
  });

  test('two webhooks delivering the same events at once land each once', async () => {
    const other = await startWebhookServer(control, secret);
    try {
      const events = Array.from({ length: 20 }, (_, i) => JSON.stringify({ uid: `twice-${i}`, time: 6_300_000 + i, type: 'access.LOGIN', realmId: 'r', userId: 'u-twice', details: { org_alias: 'acme' } }));
      const answers = await Promise.all(events.flatMap((body) => [server, other].map((s) => s.post(body, signKeycloakBody(body, secret)))));
      const landed = (await Promise.all(answers.map((a) => a.json()))) as Array<{ landingId: number; duplicate: boolean }>;
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
      for (let i = 0; i < events.length; i++) {
        const [a, b] = [landed[2 * i]!, landed[2 * i + 1]!];
        expect(a.landingId).toBe(b.landingId);
        expect([a.duplicate, b.duplicate].sort()).toEqual([false, true]);
      }
      expect((await control.pendingKeycloakEvents(100)).filter((e) => e.dedupKey.startsWith('id:twice-'))).toHaveLength(events.length);
    } finally {
      await other.close();
    }
  });
});
