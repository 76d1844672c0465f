/**
 * Keycloak events from the webhook to a real tenant store: signed deliveries (one of them
 * twice) land once, and the projector applies each through the `kc_apply_event` system
 * reducer exactly once, including across a crash between applying and marking projected.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { signKeycloakBody } from '../../storage/control/keycloak-event.js';
import { projectKeycloakEvents, type ApplyKeycloakEvent } from '../../storage/control/keycloak-projector.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import { openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { freshPostgresDatabase } from '../support/services.js';
import { startWebhookServer, type WebhookServer } from './webhook-server.js';

const secret = 'projection-secret';
let dir: string;
let control: ControlPlane;
let drop: () => Promise<void>;
let memory: TenantMemory;
let server: WebhookServer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ioboxx-kc-projection-'));
  const db = await freshPostgresDatabase('kcproj');
  drop = db.drop;
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
