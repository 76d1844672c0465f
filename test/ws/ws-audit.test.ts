/**
 * What WebSocket clients do is audited (DESIGN invariant 7), as MCP requests are: the connect of
 * an identified client, an `auth` message, each subscribe (with its tables) and unsubscribe,
 * allowed or refused (malformed messages too), and each upgrade refused before a connection exists (401s excepted:
 * authentication records those). The real WebSocket endpoint over a real tenant registry.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import type { HttpRefusalEvent } from '../../server/http/refusal-audit.js';
import type { Authenticate } from '../../server/http/seams.js';
import type { WsRequestEvent } from '../../server/ws/connection.js';
import { waitUntil } from '../support/wait-until.js';
import { startWsTestServer, type WsTestServer } from './ws-server-fixture.js';
import { TestClient } from './ws-test-client.js';

let ws: WsTestServer;
let base: string;
const requests: WsRequestEvent[] = [];
const refusals: HttpRefusalEvent[] = [];

/** `Bearer good` is the local principal; no header is a browser (first-message auth); anything else a bad token. */
const authenticate: Authenticate = async (req) => {
  const header = req.headers.authorization;
  if (header === 'Bearer good') return localPrincipal();
  return { status: 401, headers: {}, body: { error: 'invalid_token' } };
};

beforeAll(async () => {
  ws = await startWsTestServer('ws-audit', {
    authenticate, onRequest: (event) => requests.push(event), onRefusal: (event) => refusals.push(event),
  });
  base = ws.base;
}, 60_000);
afterAll(() => ws?.close());

test('connect, auth, subscribe and unsubscribe are reported with their principal, target and outcome', async () => {
  requests.length = 0;
  const client = await TestClient.connect(`${base}/ws`, { token: 'good' });
  await client.nextOfType('hello');
  client.send({ type: 'subscribe', queries: [{ id: 'o', table: 'objects' }, { id: 'r', table: 'relations' }] });
  await client.nextOfType('subscribed');
  client.send({ type: 'subscribe', queries: [{ id: 'n', table: 'no_such_table' }] });
  expect(await client.nextOfType('error')).toMatchObject({ code: 'not_found' });
  client.send({ type: 'unsubscribe', ids: ['o'] });
  await client.nextOfType('unsubscribed');
  client.send({ type: 'unsubscribe', ids: ['never'] });
  await client.nextOfType('error');
  client.send({ type: 'auth', token: 'good' });
  await client.nextOfType('authenticated');
  client.send({ type: 'ping' });
  await client.nextOfType('pong');
  client.close();

  const browser = await TestClient.connect(`${base}/ws`);
  await client.closed;
  browser.send({ type: 'auth', token: 'good' });
  await browser.nextOfType('authenticated');
  browser.close();

  await waitUntil('seven requests reported', async () => requests.length >= 7);
  expect(requests.map((e) => [e.action, e.target, e.outcome, e.principal.caller.tenant])).toEqual([
    ['ws/connect', '-', 'ok', 'local'],
    ['ws/subscribe', 'objects,relations', 'ok', 'local'],
    ['ws/subscribe', 'no_such_table', 'not_found', 'local'],
    ['ws/unsubscribe', 'o', 'ok', 'local'],
    ['ws/unsubscribe', 'never', 'not_found', 'local'],
    ['ws/auth', '-', 'ok', 'local'],
    ['ws/auth', '-', 'ok', 'local'],
  ]);
});

test('refused upgrades are reported, with the principal once it is known; 401s are not', async () => {
  refusals.length = 0;
  expect((await TestClient.refusal(`${base}/ws`, { token: 'good', headers: { origin: 'https://evil.example' } })).status).toBe(403);
  expect((await TestClient.refusal(`${base}/t/someone-else/ws`, { token: 'good' })).status).toBe(403);
  expect((await TestClient.refusal(`${base}/ws`, { token: 'bad' })).status).toBe(401);
  expect((await TestClient.refusal(`${base}/ws`, { token: 'good', protocols: ['no-such-subprotocol'] })).status).toBe(400);
  expect(refusals.map((r) => [r.path, r.status, r.principal?.caller.tenant])).toEqual([
    ['/ws', 403, undefined],
    ['/t/someone-else/ws', 403, 'local'],
    ['/ws', 400, undefined],
  ]);
  expect(refusals[1]!.reason).toContain('not someone-else');
});

test('a message of an identified client refused before it is handled is reported too: malformed, a misspelt key, an unknown type', async () => {
  requests.length = 0;
  const client = await TestClient.connect(`${base}/ws`, { token: 'good' });
  await client.nextOfType('hello');
  // A misspelt `where` would have served the whole table: refused, and the auditor must see that it was asked.
  client.send({ type: 'subscribe', queries: [{ id: 'a', table: 'access_log', wehre: { subject: 'x' } }] });
  expect(await client.nextOfType('error')).toMatchObject({ code: 'invalid_argument' });
  client.send({ type: 'unsubscribe' });
  expect(await client.nextOfType('error')).toMatchObject({ code: 'invalid_argument' });
  client.send({ type: 'drop_table', table: 'objects' });
  expect(await client.nextOfType('error')).toMatchObject({ code: 'invalid_argument' });
  client.ws.send('{not json');
  expect(await client.nextOfType('error')).toMatchObject({ code: 'invalid_argument' });
  client.close();
  await waitUntil('five requests reported', async () => requests.length >= 5);
  expect(requests.map((e) => [e.action, e.target, e.outcome])).toEqual([
    ['ws/connect', '-', 'ok'],
    ['ws/subscribe', 'access_log', 'invalid_argument'],
    ['ws/unsubscribe', '-', 'invalid_argument'],
    ['ws/message', 'drop_table', 'invalid_argument'],
    ['ws/message', '-', 'invalid_argument'],
  ]);
});

test('messages dropped busy (past inboundPendingMax waiting) are reported, each with the tables it asked for', async () => {
  requests.length = 0;
  const client = await TestClient.connect(`${base}/ws`, { token: 'good' });
  await client.nextOfType('hello');
  const ids = Array.from({ length: 200 }, (_, i) => `burst-${i}`);
  for (const id of ids) client.send({ type: 'subscribe', queries: [{ id, table: 'objects', where: { type: 'burst' } }] });
  let answered = 0;
  let busy = 0;
  while (answered < ids.length) {
    const m = await client.next((x) => x.type === 'subscribed' || x.type === 'error');
    if (m.type === 'error' && m.code === 'busy') busy++;
    answered += m.type === 'subscribed' ? m.queries.length : m.ids.length;
  }
  client.close();
  expect(busy).toBeGreaterThan(0);
  await waitUntil('every subscribe reported', async () => requests.length >= 1 + ids.length);
  const outcomes = requests.filter((e) => e.action === 'ws/subscribe').map((e) => `${e.target} ${e.outcome}`);
  expect(outcomes.filter((o) => o === 'objects busy')).toHaveLength(busy);
  expect(outcomes.filter((o) => o === 'objects ok')).toHaveLength(ids.length - busy);
});
