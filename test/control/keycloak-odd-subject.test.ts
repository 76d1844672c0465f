/**
 * A signed event whose subject user Postgres text cannot hold or index (U+0000, an id of
 * thousands of characters) is projected as an event about no user: it must not fail every pass
 * and stop the events after it.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { landedSubjectUser, parseKeycloakEvent } from '../../storage/control/keycloak-event.js';
import { projectKeycloakEvents, type ApplyKeycloakEvent } from '../../storage/control/keycloak-projector.js';
import { freshPostgresDatabase } from '../support/services.js';

let control: ControlPlane;
let drop: () => Promise<void>;

beforeAll(async () => {
  const db = await freshPostgresDatabase('kcoddsubject');
  drop = db.drop;
  control = await openControlPlane({ databaseUrl: db.url });
});

afterAll(async () => {
  await control?.close();
  await drop?.();
});

async function land(json: object): Promise<void> {
  const event = parseKeycloakEvent(JSON.stringify(json));
  await control.landKeycloakEvent({
    dedupKey: event.dedupKey, tenant: event.tenant, kind: event.kind, eventType: event.type, eventTimeMs: event.timeMs, raw: event.raw,
    subjectUser: landedSubjectUser(event),
  });
}

test('an unlandable subject user does not stop the projector', async () => {
  // Not compressible: an index row of it would pass Postgres's limit.
  const huge = Array.from({ length: 3000 }, (_, i) => String.fromCodePoint(0x4e00 + ((i * 7919) % 20000))).join('');
  await land({ uid: 'odd-1', time: 1000, type: 'access.UPDATE_PROFILE', realmId: 'r', userId: huge, details: { org_alias: 'acme' } });
  await land({ uid: 'odd-2', time: 1001, type: 'access.UPDATE_PROFILE', realmId: 'r', userId: 'u\u0000x', details: { org_alias: 'acme' } });
  await land({ uid: 'odd-3', time: 1002, type: 'access.DELETE_ACCOUNT', realmId: 'r', userId: 'v\u0000y' });
  await land({ uid: 'odd-4', time: 2000, type: 'access.REGISTER', realmId: 'r', userId: 'good', details: { org_alias: 'acme', username: 'g' } });
  const applied: string[] = [];
  const apply: ApplyKeycloakEvent = async (tenant, event) => { applied.push(`${tenant}:${event.id}`); };
  expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 3, skipped: 1 });
  expect(applied).toEqual(['acme:odd-1', 'acme:odd-2', 'acme:odd-4']);
  expect(await control.userTenants('good')).toEqual(['acme']);
  expect(await control.pendingKeycloakEvents(10)).toEqual([]);
});
