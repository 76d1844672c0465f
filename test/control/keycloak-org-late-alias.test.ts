/**
 * An organization deleted and made again with the same id under another alias (an import keeping
 * its id): a late redelivery of an event from before, naming the id with the old alias, must not
 * route the organization's later id-only events to the old alias's tenant.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { signKeycloakBody } from '../../storage/control/keycloak-event.js';
import { projectKeycloakEvents, type ApplyKeycloakEvent } from '../../storage/control/keycloak-projector.js';
import { freshPostgresDatabase } from '../support/services.js';
import { startWebhookServer, type WebhookServer } from './webhook-server.js';

let control: ControlPlane;
let drop: () => Promise<void>;
let server: WebhookServer;
const secret = 'late-alias-secret';

beforeAll(async () => {
  const db = await freshPostgresDatabase('kcorglate');
  drop = db.drop;
  control = await openControlPlane({ databaseUrl: db.url });
  server = await startWebhookServer(control, secret);
});

afterAll(async () => {
  await server?.close();
  await control?.close();
  await drop?.();
});

const applied: string[] = [];
const apply: ApplyKeycloakEvent = async (tenant, event) => { applied.push(`${tenant}:${event.id}`); };

async function landAndProject(json: object): Promise<void> {
  const body = JSON.stringify(json);
  expect((await server.post(body, signKeycloakBody(body, secret))).status).toBe(202);
  await projectKeycloakEvents(control, apply);
}

const org = (id: string, type: string, time: number, alias: string) => ({
  id, time, operationType: type, resourceType: 'ORGANIZATION', resourcePath: 'organizations/o1',
  representation: JSON.stringify({ id: 'o1', alias }), authDetails: { realmId: 'r', userId: 'admin' },
});

test('a late event naming the old alias does not take the id back from the organization made again', async () => {
  await landAndProject(org('e1', 'CREATE', 1000, 'acme'));
  await landAndProject(org('e2', 'UPDATE', 1500, 'acme'));
  await landAndProject({ id: 'e3', time: 2000, operationType: 'DELETE', resourceType: 'ORGANIZATION', resourcePath: 'organizations/o1', authDetails: { realmId: 'r', userId: 'admin' } });
  await landAndProject(org('e4', 'CREATE', 3000, 'beta'));
  expect(await control.organizationAlias('o1')).toBe('beta');
  // Keycloak's sender redelivers an old one, the very same (its answer was lost): a duplicate.
  await landAndProject(org('e2', 'UPDATE', 1500, 'acme'));
  expect(await control.organizationAlias('o1')).toBe('beta');
  await landAndProject({
    id: 'e5', time: 4000, operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', resourcePath: 'organizations/o1/members/u1',
    representation: JSON.stringify({ id: 'u1' }), authDetails: { realmId: 'r', userId: 'admin' },
  });
  expect(applied.filter((a) => a.endsWith(':e5'))).toEqual(['beta:e5']);
});
