/**
 * Identity on the WebSocket endpoint, with tokens from the real test OIDC issuer process and
 * stores from the real tenant registry: refusals at upgrade carry the same statuses as /mcp,
 * browsers authenticate in their first message, each table needs its capability, and a
 * connection sees only its own tenant's transactions.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createAuthenticator } from '../../server/auth/authenticator.js';
import { authenticateRequest } from '../../server/auth/http-auth.js';
import type { Authenticate, MemoryFor } from '../../server/http/seams.js';
import { TenantRegistry } from '../../server/tenants/registry.js';
import { attachWebSocket, type WebSocketServing } from '../../server/ws/attach-websocket.js';
import { wsClose } from '../../server/ws/close-codes.js';
import { memoryExposedTables } from '../../server/ws/exposed-tables.js';
import { memoryTools, openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { authConfigForIssuer, startOidcIssuer, type OidcIssuerProcess } from '../support/oidc-issuer.js';
import { waitUntil } from '../support/wait-until.js';
import { TestClient } from './ws-test-client.js';

let idp: OidcIssuerProcess;
let dataDir: string;
let registry: TenantRegistry<TenantMemory>;
let server: Server;
let serving: WebSocketServing;
let base: string;
let authenticate: Authenticate;
let memoryFor: MemoryFor;
const authTimeoutMs = 2_000;

beforeAll(async () => {
  idp = await startOidcIssuer();
  dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-ws-auth-'));
  registry = new TenantRegistry<TenantMemory>({ dataDir, open: (tenant, dir) => openTenantMemory(dir, tenant) });
  server = createServer((_req, res) => res.writeHead(404).end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  base = `ws://127.0.0.1:${port}`;
  const authenticator = createAuthenticator(authConfigForIssuer(idp));
  authenticate = async (req) => {
    const result = await authenticateRequest(req, {
      authenticator,
      resource: { publicBaseUrl: `http://127.0.0.1:${port}`, authorizationServers: [idp.issuer()], endpointNames: ['mcp', 'ws'] },
    });
    return result.ok ? result.principal : result.failure;
  };
  memoryFor = async (principal) => {
    const lease = await registry.acquire(principal.caller.tenant);
    return { memory: lease.store, release: () => lease.release() };
  };
  serving = attachWebSocket(server, { authenticate, memoryFor, tables: memoryExposedTables(), limits: { authTimeoutMs } });
}, 60_000);

afterAll(async () => {
  await serving?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await registry?.close();
  await idp?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const reader = (organizations: string[] = ['acme']) => idp.token({ organizations, realmRoles: ['memory-reader'] });

async function write(tenant: string, id: string, type = 'shared', attributes: Record<string, unknown> = {}): Promise<number> {
  const lease = await registry.acquire(tenant);
  try {
    const def = memoryTools.find((t) => t.name === 'object_put')!;
    const done = await def.call({ memory: lease.store, caller: { tenant, subject: 'writer' } }, { id, type, attributes } as never);
    return (done as { offset: number }).offset;
  } finally {
    lease.release();
  }
}

describe('at upgrade', () => {
  test('a token that does not verify is refused with 401 and a resource_metadata challenge', async () => {
    const token = await reader();
    const forged = `${token.slice(0, -4)}AAAA`;
    const refusal = await TestClient.refusal(`${base}/ws`, { token: forged });
    expect(refusal.status).toBe(401);
    expect(String(refusal.headers['www-authenticate'])).toMatch(/error="invalid_token".*resource_metadata=|resource_metadata=.*error="invalid_token"/);
    expect((await TestClient.refusal(`${base}/ws`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } })).status).toBe(401);
  });

  test('a tenant the token is not a member of is refused with 403', async () => {
    const refusal = await TestClient.refusal(`${base}/t/globex/ws`, { token: await reader(['acme']) });
    expect(refusal.status).toBe(403);
    expect(JSON.parse(refusal.body)).toMatchObject({ error: 'insufficient_scope' });
  });

  test('a token granting no capability is refused with 403', async () => {
    const refusal = await TestClient.refusal(`${base}/ws`, { token: await idp.token({ organizations: ['acme'] }) });
    expect(refusal.status).toBe(403);
  });

  test('a valid token in the header: hello names its tenant, and a table needs its capability', async () => {
    const client = await TestClient.connect(`${base}/t/acme/ws`, { token: await reader() });
    const hello = await client.nextOfType('hello');
    expect(hello).toMatchObject({ authenticated: true, tenant: 'acme', capabilities: ['read'] });
    expect(hello.tables.map((t: any) => t.name)).toContain('objects');
    expect(hello.tables.map((t: any) => t.name)).not.toContain('kc_users');
    client.send({ type: 'subscribe', queries: [{ id: 'users', table: 'kc_users' }] });
    expect(await client.nextOfType('error')).toMatchObject({ code: 'forbidden', ids: ['users'] });
    client.send({ type: 'subscribe', queries: [{ id: 'log', table: 'access_log' }] });
    expect(await client.nextOfType('error')).toMatchObject({ code: 'forbidden', ids: ['log'] });
    client.send({ type: 'subscribe', queries: [{ id: 'objects', table: 'objects' }] });
    expect(await client.nextOfType('subscribed')).toMatchObject({ queries: [{ id: 'objects' }] });
    client.close();
  });
});

describe('first-message authentication (browsers)', () => {
  test('without a header the connection opens unauthenticated and the auth message authenticates it', async () => {
    const client = await TestClient.connect(`${base}/ws`);
    expect(await client.nextOfType('hello')).toMatchObject({ authenticated: false, authTimeoutMs });
    client.send({ type: 'auth', token: await reader() });
    expect(await client.nextOfType('authenticated')).toMatchObject({ tenant: 'acme', subject: expect.any(String) });
    client.send({ type: 'subscribe', queries: [{ id: 'o', table: 'objects', where: { type: 'browser' } }] });
    expect(await client.nextOfType('subscribed')).toMatchObject({ queries: [{ id: 'o', rows: [] }] });
    client.close();
  });

  test('a bad token in the auth message closes with 4401', async () => {
    const client = await TestClient.connect(`${base}/ws`);
    client.send({ type: 'auth', token: 'not.a.token' });
    expect((await client.closed).code).toBe(wsClose.unauthorized);
  });

  test('the auth message for another tenant than the path closes with 4403', async () => {
    const client = await TestClient.connect(`${base}/t/globex/ws`);
    client.send({ type: 'auth', token: await reader(['acme']) });
    expect((await client.closed).code).toBe(wsClose.forbidden);
  });

  test('anything but auth first closes with 4400', async () => {
    const client = await TestClient.connect(`${base}/ws`);
    client.send({ type: 'subscribe', queries: [{ id: 'o', table: 'objects' }] });
    expect((await client.closed).code).toBe(wsClose.badRequest);
  });

  test('no auth message within authTimeoutMs closes with 4408', async () => {
    const client = await TestClient.connect(`${base}/ws`);
    expect((await client.closed).code).toBe(wsClose.authTimeout);
  });

  test('an expired token ends the connection with 4401', async () => {
    const client = await TestClient.connect(`${base}/ws`, { token: await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'], ttlS: 1 }) });
    expect(await client.nextOfType('hello')).toMatchObject({ tokenExpiresAtMs: expect.any(Number) });
    expect(await client.closed).toMatchObject({ code: wsClose.unauthorized, reason: expect.stringMatching(/expired/) });
  });
});

describe('re-authentication', () => {
  test('a fresh token for the same subject renews the connection; another subject closes it with 4403', async () => {
    const client = await TestClient.connect(`${base}/ws`, { token: await reader() });
    await client.nextOfType('hello');
    client.send({ type: 'subscribe', queries: [{ id: 'o', table: 'objects', where: { type: 'renewed' } }] });
    await client.nextOfType('subscribed');
    client.send({ type: 'auth', token: await reader() });
    expect(await client.nextOfType('authenticated')).toMatchObject({ tenant: 'acme', capabilities: ['read'] });
    // Still live after the renewal.
    await write('acme', 'renewed-1', 'renewed');
    expect((await client.nextOfType('tx')).queries[0].inserted[0].id).toBe('renewed-1');
    client.send({ type: 'auth', token: await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'], subject: 'someone-else' }) });
    expect((await client.closed).code).toBe(wsClose.forbidden);
  });

  test('a fresh token sent before the old one expires keeps the connection, though a long resume holds it back', async () => {
    // An endpoint with a small send queue: a resume's replay waits for the client after a few transactions.
    const other = createServer((_req, res) => res.writeHead(404).end());
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    const paced = attachWebSocket(other, { authenticate, memoryFor, tables: memoryExposedTables(), limits: { sendQueueBytesMax: 256 * 1024, socketBufferBytesMax: 32 * 1024 } });
    try {
      // Far more than the loopback socket's kernel buffers hold: the replay cannot finish unread.
      const blob = 'r'.repeat(48 * 1024);
      const offsets = (await Promise.all(Array.from({ length: 300 }, (_, i) => write('initech', `resume-${i}`, 'resume', { i, blob })))).sort((a, b) => a - b);
      const after = offsets[0]! - 1;
      const tokenFor = (ttlS: number) => idp.token({ organizations: ['initech'], realmRoles: ['memory-reader'], ttlS });
      const client = await TestClient.connect(`ws://127.0.0.1:${(other.address() as { port: number }).port}/ws`, { token: await tokenFor(5) });
      const { tokenExpiresAtMs } = await client.nextOfType('hello');
      client.ws.pause(); // reads nothing: the kernel buffers fill, then the send queue, and the replay waits
      client.send({ type: 'subscribe', queries: [{ id: 'r', table: 'objects', where: { type: 'resume' } }], after });
      await waitUntil('the resume\'s replay waits for the client', async () => paced.subscriptionLagMax() > 0);
      client.send({ type: 'auth', token: await tokenFor(60) });
      // The server's expiry timer fires at the old token's exp (late on a loaded machine: a margin).
      const expiryMarginMs = 2_000;
      await new Promise((resolve) => setTimeout(resolve, tokenExpiresAtMs + expiryMarginMs - Date.now()));
      client.ws.resume();
      const answer = await Promise.race([client.closed, client.nextOfType('authenticated', 30_000)]);
      expect(answer, 'still open past the old token\'s exp, and the fresh auth answered').toMatchObject({ type: 'authenticated', tenant: 'initech' });
      expect(client.received.find((m) => m.type === 'subscribed')).toMatchObject({ resumed: true, offset: after });
      const types = client.received.map((m) => m.type);
      expect(client.received.filter((m) => m.type === 'tx').map((m) => m.offset), 'the complete catch-up, in order').toEqual(offsets);
      // Answered in its turn: after the resume it waited behind.
      expect(types.lastIndexOf('tx')).toBeLessThan(types.indexOf('authenticated'));
      client.close();
    } finally {
      await paced.close();
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  }, 60_000);
});

describe('tenancy', () => {
  test('a subscription sees only its own tenant, whatever the other tenant writes', async () => {
    const acme = await TestClient.connect(`${base}/ws`, { token: await reader(['acme']) });
    const globex = await TestClient.connect(`${base}/ws`, { token: await reader(['globex']) });
    for (const client of [acme, globex]) {
      await client.nextOfType('hello');
      client.send({ type: 'subscribe', queries: [{ id: 'all', table: 'objects', where: { type: 'shared' } }] });
      await client.nextOfType('subscribed');
    }
    await write('globex', 'globex-secret');
    const acmeOffset = await write('acme', 'acme-row');
    const seen = await acme.nextOfType('tx');
    expect(seen).toMatchObject({ offset: acmeOffset, queries: [{ id: 'all', inserted: [{ id: 'acme-row' }] }] });
    expect(JSON.stringify(acme.received)).not.toContain('globex-secret');
    expect((await globex.nextOfType('tx')).queries[0].inserted[0].id).toBe('globex-secret');
    acme.close();
    globex.close();
  });
});
