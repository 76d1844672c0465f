/**
 * Keycloak events: parsing of both shapes and the tenant rule (pure), and the webhook over
 * real HTTP on 127.0.0.1 landing into real Postgres: signed events land once and project once,
 * a wrong or missing signature is rejected with nothing landed.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { keycloakEventBytesMax, keycloakFieldCharsMax, parseKeycloakEvent, signKeycloakBody, verifyKeycloakSignature, type KeycloakEvent } from '../../storage/control/keycloak-event.js';
import { projectKeycloakEvents } from '../../storage/control/keycloak-projector.js';
import { toolArgumentsDepthMax } from '../../server/mcp/limits.js';
import { freshPostgresDatabase } from '../support/services.js';
import { startWebhookServer, type WebhookServer } from './webhook-server.js';

const secret = 'test-webhook-secret';

describe('Keycloak event parsing', () => {
  test('a stock user event names its tenant by the organization in its details', () => {
    const e = parseKeycloakEvent(JSON.stringify({ id: 'e1', time: 5, type: 'LOGIN', realmId: 'r', clientId: 'app', userId: 'u1', details: { org_alias: 'acme', username: 'ann' } }));
    expect(e).toMatchObject({ kind: 'user', id: 'e1', type: 'LOGIN', userId: 'u1', clientId: 'app', tenant: 'acme', dedupKey: 'id:e1', details: { username: 'ann' } });
  });

  test('a stock admin event parses its representation string and takes the organization id from the resource path', () => {
    const e = parseKeycloakEvent(
      JSON.stringify({
        time: 7,
        realmId: 'r',
        authDetails: { realmId: 'r', clientId: 'admin-cli', userId: 'admin1' },
        operationType: 'CREATE',
        resourceType: 'ORGANIZATION_MEMBERSHIP',
        resourcePath: 'organizations/org-123/members/u9',
        representation: JSON.stringify({ id: 'u9', username: 'bob' }),
      }),
    );
    expect(e).toMatchObject({ kind: 'admin', type: 'ORGANIZATION_MEMBERSHIP-CREATE', operationType: 'CREATE', userId: 'admin1', tenant: 'org-123', representation: { id: 'u9', username: 'bob' } });
    expect(e.dedupKey).toMatch(/^sha256:[0-9a-f]{64}$/); // no id: the content hash makes it idempotent
  });

  test('the webhook-extension form: access./admin. types and a uid', () => {
    const user = parseKeycloakEvent(JSON.stringify({ uid: 'w1', time: 1, type: 'access.REGISTER', realmId: 'r', userId: 'u2', details: { organization: 'globex' } }));
    expect(user).toMatchObject({ kind: 'user', type: 'REGISTER', id: 'w1', dedupKey: 'id:w1', tenant: 'globex' });
    const admin = parseKeycloakEvent(
      JSON.stringify({ uid: 'w2', time: 2, type: 'admin.REALM_ROLE_MAPPING-CREATE', realmId: 'r', resourcePath: 'users/u2/role-mappings/realm', representation: '[{"name":"writer"}]', details: { org_alias: 'globex' } }),
    );
    expect(admin).toMatchObject({ kind: 'admin', resourceType: 'REALM_ROLE_MAPPING', operationType: 'CREATE', tenant: 'globex', representation: [{ name: 'writer' }] });
  });

  test('an event without any organization has no tenant; a body that is no event is refused', () => {
    expect(parseKeycloakEvent(JSON.stringify({ id: 'x', time: 1, type: 'LOGIN', userId: 'u' })).tenant).toBeNull();
    expect(() => parseKeycloakEvent('[1,2]')).toThrow(/JSON object/);
    expect(() => parseKeycloakEvent('{"time":1}')).toThrow(/neither type nor operationType/);
    expect(() => parseKeycloakEvent('{"type":"LOGIN"}')).toThrow(/time/);
  });

  test('an admin event is about the user in its resource path (URI-decoded), or the member an organization membership names; a path that cannot be decoded names none', () => {
    const admin = (fields: Record<string, unknown>) => parseKeycloakEvent(JSON.stringify({ time: 1, operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP', ...fields }));
    expect(admin({ resourceType: 'GROUP_MEMBERSHIP', resourcePath: 'users/ann%40x.org/groups/g1' }).subjectUserId).toBe('ann@x.org');
    expect(admin({ resourcePath: 'organizations/o1/members/u9' }).subjectUserId).toBe('u9');
    expect(admin({ resourcePath: 'organizations/o1/members', representation: JSON.stringify({ id: 'u8' }) }).subjectUserId).toBe('u8');
    // Keycloak's add-member body is the bare user id, a JSON string.
    expect(admin({ resourcePath: 'organizations/o1/members', representation: JSON.stringify('u7') }).subjectUserId).toBe('u7');
    expect(admin({ resourceType: 'CLIENT', resourcePath: 'clients/c1' }).subjectUserId).toBeNull();
    const undecodable = admin({ resourceType: 'USER', resourcePath: 'users/%E0%A4%A' });
    expect(undecodable.subjectUserId).toBeNull();
    expect(admin({ resourcePath: 'organizations/%/members/u1' })).toMatchObject({ subjectUserId: 'u1', tenant: null });
  });

  test('the signature is checked over the raw bytes with the secret', () => {
    const body = Buffer.from('{"a":1}');
    expect(verifyKeycloakSignature(body, signKeycloakBody(body, secret), secret)).toBe(true);
    expect(verifyKeycloakSignature(body, `sha256=${signKeycloakBody(body, secret)}`, secret)).toBe(true);
    expect(verifyKeycloakSignature(body, signKeycloakBody(body, 'other'), secret)).toBe(false);
    expect(verifyKeycloakSignature(Buffer.from('{"a":2}'), signKeycloakBody(body, secret), secret)).toBe(false);
    expect(verifyKeycloakSignature(body, 'abc', secret)).toBe(false);
    expect(verifyKeycloakSignature(body, undefined, secret)).toBe(false);
  });
});

describe('POST /hooks/keycloak', () => {
  let control: ControlPlane;
  let drop: () => Promise<void>;
  let server: WebhookServer;

  beforeAll(async () => {
    const db = await freshPostgresDatabase('kchook');
    drop = db.drop;
    control = await openControlPlane({ databaseUrl: db.url });
    server = await startWebhookServer(control, secret);
  });
  afterAll(async () => {
    await server?.close();
    await control?.close();
    await drop?.();
  });

  const post = (body: string, signature?: string) => server.post(body, signature);

  test('the same event delivered twice is landed once and projected once', async () => {
    const body = JSON.stringify({ uid: 'dup-1', time: 10, type: 'access.LOGIN', realmId: 'r', userId: 'u1', details: { org_alias: 'acme' } });
    const first = await post(body, signKeycloakBody(body, secret));
    const second = await post(body, signKeycloakBody(body, secret));
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    const a = (await first.json()) as { landingId: number; duplicate: boolean };
    const b = (await second.json()) as { landingId: number; duplicate: boolean };
    expect(a.duplicate).toBe(false);
    expect(b).toEqual({ landingId: a.landingId, duplicate: true });

    const applied: Array<[string, string, number]> = [];
    const apply = async (tenant: string, event: KeycloakEvent, landingId: number) => {
      applied.push([tenant, event.type, landingId]);
    };
    expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 1, skipped: 0 });
    expect(await projectKeycloakEvents(control, apply)).toEqual({ projected: 0, skipped: 0 });
    expect(applied).toEqual([['acme', 'LOGIN', a.landingId]]);
  });

  test('a wrong or missing signature is rejected and nothing lands', async () => {
    const body = JSON.stringify({ uid: 'forged-1', time: 11, type: 'access.LOGIN', userId: 'u1', details: { org_alias: 'acme' } });
    expect((await post(body, signKeycloakBody(body, 'not-the-secret'))).status).toBe(401);
    expect((await post(body)).status).toBe(401);
    const tampered = body.replace('u1', 'u2');
    expect((await post(tampered, signKeycloakBody(body, secret))).status).toBe(401);
    expect(await control.pendingKeycloakEvents(10)).toEqual([]);
  });

  test('an event naming its organization only by id reaches the tenant named by the alias learned earlier', async () => {
    const created = JSON.stringify({
      id: 'org-ev-1', time: 20, realmId: 'r', operationType: 'CREATE', resourceType: 'ORGANIZATION',
      resourcePath: 'organizations/org-9', representation: JSON.stringify({ id: 'org-9', alias: 'initech', name: 'Initech' }),
    });
    const joined = JSON.stringify({
      id: 'org-ev-2', time: 21, realmId: 'r', operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP',
      resourcePath: 'organizations/org-9/members/u7', representation: JSON.stringify({ id: 'u7', username: 'peter' }),
    });
    expect((await post(created, signKeycloakBody(created, secret))).status).toBe(202);
    expect((await post(joined, signKeycloakBody(joined, secret))).status).toBe(202);
    const tenants: string[] = [];
    await projectKeycloakEvents(control, async (tenant) => {
      tenants.push(tenant);
    });
    expect(tenants).toEqual(['initech', 'initech']);
  });

  test('a signed event nested deeper than a tool argument may be is refused with 400 naming the limit, and nothing lands', async () => {
    for (const depth of [3_000, 10_000]) {
      const body = `{"id":"deep-${depth}","type":"REGISTER","time":1,"userId":"u","details":{"org_alias":"acme"},"extra":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const answer = await post(body, signKeycloakBody(body, secret));
      expect(answer.status).toBe(400);
      expect(await answer.json()).toMatchObject({ error: 'limit_exceeded', message: expect.stringContaining(`the limit (toolArgumentsDepthMax) is ${toolArgumentsDepthMax}`) });
    }
    expect(await control.pendingKeycloakEvents(10)).toEqual([]);
  });

  test('a landing that fails for a reason other than the database is a logged 500, not a false 503', async () => {
    const failures: unknown[] = [];
    const broken = { landKeycloakEvent: async () => { throw new TypeError('a bug, not an outage'); } } as unknown as ControlPlane;
    const other = await startWebhookServer(broken, secret, { onFailed: (error) => failures.push(error) });
    try {
      const body = JSON.stringify({ id: 'bug-1', time: 1, type: 'LOGIN', userId: 'u', details: { org_alias: 'acme' } });
      expect((await other.post(body, signKeycloakBody(body, secret))).status).toBe(500);
      expect(failures).toEqual([expect.objectContaining({ message: 'a bug, not an outage' })]);
    } finally {
      await other.close();
    }
  });

  test('a body over the hook\'s own limit is refused with 413 naming that limit (not the MCP body limit)', async () => {
    const body = JSON.stringify({ id: 'big', type: 'LOGIN', time: 1, details: { pad: 'x'.repeat(keycloakEventBytesMax) } });
    const answer = await post(body, signKeycloakBody(body, secret));
    expect(answer.status).toBe(413);
    expect(await answer.json()).toMatchObject({ error: 'limit_exceeded', message: `Keycloak event larger than ${keycloakEventBytesMax} bytes (keycloakEventBytesMax)` });
  });

  test('a signed body that is not a Keycloak event is refused with 400', async () => {
    const body = '{"hello":"world"}';
    expect((await post(body, signKeycloakBody(body, secret))).status).toBe(400);
  });

  // They were answered 503 "control plane unavailable; retry" (Postgres refusing the text, or an
  // index row over its size): Keycloak's sender retries a 5xx, so each was retried forever.
  test('a signed event whose id, type or organization Postgres cannot store (U+0000, over keycloakFieldCharsMax) is refused with 400 naming the field, not a 503 retried forever; nothing lands', async () => {
    const randomId = Array.from({ length: keycloakFieldCharsMax + 1 }, (_, i) => ((i * 7919) % 36).toString(36)).join('');
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ uid: 'nul\u0000id', type: 'access.LOGIN', details: { org_alias: 'acme' } }, /id .*U\+0000/],
      [{ uid: 'nul-type', type: 'access.LOG\u0000IN', details: { org_alias: 'acme' } }, /type .*U\+0000/],
      [{ uid: 'nul-alias', type: 'access.LOGIN', details: { org_alias: 'ac\u0000me' } }, /organization alias .*U\+0000/],
      [{ uid: 'nul-org-id', type: 'access.LOGIN', details: { org_alias: 'acme', org_id: 'org\u00001' } }, /organization id .*U\+0000/],
      [{ uid: randomId, type: 'access.LOGIN', details: { org_alias: 'acme' } }, new RegExp(`id .*${keycloakFieldCharsMax} characters \\(keycloakFieldCharsMax\\)`)],
    ];
    for (const [fields, message] of cases) {
      const body = JSON.stringify({ time: 1, userId: 'u1', ...fields });
      const answer = await post(body, signKeycloakBody(body, secret));
      expect(answer.status, JSON.stringify(fields).slice(0, 80)).toBe(400);
      expect(((await answer.json()) as { message: string }).message).toMatch(message);
    }
    expect(await control.pendingKeycloakEvents(10)).toEqual([]);
  });

  // Every refusal was reported without its status, and the server recorded each as a 401 in its audit.
  test('each refusal is reported with the status it was answered: 401 signature, 400 not an event, 413 too large, 415 an unknown encoding', async () => {
    const rejected: Array<[string, number]> = [];
    const other = await startWebhookServer(control, secret, { onRejected: (reason, status) => rejected.push([reason, status]) });
    try {
      const event = JSON.stringify({ id: 'rej-1', time: 1, type: 'LOGIN', userId: 'u', details: { org_alias: 'acme' } });
      expect((await other.post(event, 'f'.repeat(64))).status).toBe(401);
      const notEvent = '{"hello":"world"}';
      expect((await other.post(notEvent, signKeycloakBody(notEvent, secret))).status).toBe(400);
      const big = JSON.stringify({ id: 'big', type: 'LOGIN', time: 1, details: { pad: 'x'.repeat(keycloakEventBytesMax) } });
      expect((await other.post(big, signKeycloakBody(big, secret))).status).toBe(413);
      const encoded = await fetch(`${other.base}/hooks/keycloak`, {
        method: 'POST', body: event,
        headers: { 'content-type': 'application/json', 'content-encoding': 'x-unknown', 'x-keycloak-signature': signKeycloakBody(event, secret) },
      });
      expect(encoded.status).toBe(415);
      expect(rejected.map(([, status]) => status)).toEqual([401, 400, 413, 415]);
      expect(rejected[0]![0]).toBe('bad signature');
    } finally {
      await other.close();
    }
  });
});
