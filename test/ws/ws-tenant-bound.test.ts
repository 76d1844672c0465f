/**
 * One tenant's clients cannot take every WebSocket connection of the server: authenticated
 * connections are bounded per tenant (connectionsPerTenantMax). Past it the upgrade is refused
 * 503 naming the bound, and a browser's first auth message closes 1013; other tenants still
 * connect, and a closed connection gives its place back. Before, only the server-wide
 * connectionsMax held. Real stores from the tenant registry; the bearer token names the tenant.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import type { Authenticate } from '../../server/http/seams.js';
import { wsClose } from '../../server/ws/close-codes.js';
import { waitUntil } from '../support/wait-until.js';
import { startWsTestServer, type WsTestServer } from './ws-server-fixture.js';
import { TestClient } from './ws-test-client.js';

let ws: WsTestServer;
let base: string;

/** `Bearer T` is the local principal of tenant T: the bound, not the token, is under test. */
const authenticate: Authenticate = async (req) => {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return { status: 401, headers: {}, body: { error: 'invalid_token' } };
  return localPrincipal(header.slice('Bearer '.length));
};

beforeAll(async () => {
  ws = await startWsTestServer('ws-tenant-bound', { authenticate, limits: { connectionsPerTenantMax: 2 } });
  base = ws.base;
});
afterAll(() => ws?.close());

async function connected(tenant: string): Promise<TestClient> {
  const client = await TestClient.connect(`${base}/ws`, { token: tenant });
  expect(await client.nextOfType('hello')).toMatchObject({ authenticated: true, tenant });
  return client;
}

test('authenticated connections are bounded per tenant, at upgrade and at a browser\'s auth message; other tenants connect; a closed one gives its place back', async () => {
  const first = await connected('acme');
  const second = await connected('acme');

  const refused = await TestClient.refusal(`${base}/ws`, { token: 'acme' });
  expect(refused.status).toBe(503);
  expect(refused.body).toContain('connectionsPerTenantMax = 2');

  const browser = await TestClient.connect(`${base}/ws`);
  expect(await browser.nextOfType('hello')).toMatchObject({ authenticated: false });
  browser.send({ type: 'auth', token: 'acme' });
  expect(await browser.closed).toMatchObject({ code: wsClose.tryAgainLater, reason: expect.stringContaining('connectionsPerTenantMax = 2') });

  const other = await connected('globex');

  first.close();
  await first.closed;
  let third: TestClient | undefined;
  await waitUntil('acme\'s closed connection gave its place back', async () => {
    third = await TestClient.connect(`${base}/ws`, { token: 'acme' }).catch(() => undefined);
    return third !== undefined;
  });
  expect(await third!.nextOfType('hello')).toMatchObject({ authenticated: true, tenant: 'acme' });
  for (const client of [second, other, third!]) client.close();
});

/** An upgrade request with a valid token that `ws` refuses itself: the handshake headers are wrong. */
function malformedHandshake(headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${base.replace(/^ws:/, 'http:')}/ws`, { headers: { connection: 'Upgrade', upgrade: 'websocket', authorization: 'Bearer initech', ...headers } });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('upgrade', () => reject(new Error('the malformed handshake was upgraded')));
    req.on('error', reject);
    req.end();
  });
}

test('a handshake refused by ws after the token verified gives the tenant\'s place back', async () => {
  // No Sec-WebSocket-Key, then an unknown version: more of them than the tenant has places.
  for (let i = 0; i < 3; i++) {
    expect(await malformedHandshake({ 'sec-websocket-version': '13' })).toBe(400);
    expect(await malformedHandshake({ 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '7' })).toBe(400);
  }
  const first = await connected('initech');
  const second = await connected('initech');
  for (const client of [first, second]) client.close();
});
