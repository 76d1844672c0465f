/**
 * MCP requests refused at the HTTP level, before any MCP server sees them, are audited
 * (DESIGN invariant 7): the refused Origin (no principal yet), a session that is gone, a body
 * too large or not JSON, a wrong Accept, a path naming another tenant. Authentication's refusals
 * (401, 400, 403) are left to authentication, which records them with their reason; other paths than the
 * MCP endpoints are not MCP requests. The real HTTP server in process, over the notes fixture.
 */
import { afterEach, expect, test } from 'vitest';
import type { HttpRefusalEvent } from '../../server/http/refusal-audit.js';
import type { Authenticate } from '../../server/http/seams.js';
import type { CallAdmission } from '../../server/ops/request-admission.js';
import { headerAuthenticate, startNotesHttp, subjectHeader, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { waitUntil } from '../support/wait-until.js';

const initialize = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
};

/** A request with `x-test-refuse: STATUS` is refused by authentication with that status (401 as a bad token, 403 as a tenant the token is not in). */
const refusingAuthenticate: Authenticate = async (req) => {
  const refuse = req.headers['x-test-refuse'];
  if (typeof refuse === 'string') return { status: Number(refuse), headers: {}, body: { error: refuse === '401' ? 'invalid_token' : 'insufficient_scope' } };
  return headerAuthenticate(req);
};

let http: NotesHttp | undefined;
afterEach(async () => {
  await http?.serving.close();
  http = undefined;
});

async function startedWith(refusals: HttpRefusalEvent[]): Promise<string> {
  http = await startNotesHttp({ authenticate: refusingAuthenticate, bodyBytesMax: 4096, onRefusal: (event) => refusals.push(event) });
  return http.serving.url;
}

function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body });
}

test('each refused MCP request is reported once, with the principal when it was authenticated first', async () => {
  const refusals: HttpRefusalEvent[] = [];
  const url = await startedWith(refusals);
  const as = { [subjectHeader]: 'alice' };
  const statuses = [
    (await post(`${url}/mcp`, JSON.stringify(initialize), { origin: 'https://evil.example' })).status,
    (await post(`${url}/mcp`, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }), { ...as, 'mcp-session-id': 'gone' })).status,
    (await post(`${url}/mcp`, JSON.stringify({ ...initialize, pad: 'x'.repeat(8192) }), as)).status,
    (await post(`${url}/mcp`, '{"jsonrpc": "2.0", ', as)).status,
    (await post(`${url}/mcp`, JSON.stringify(initialize), { ...as, accept: 'text/plain' })).status,
    (await post(`${url}/t/someone-else/mcp`, JSON.stringify(initialize), as)).status,
  ];
  expect(statuses).toEqual([403, 404, 413, 400, 406, 403]);
  await waitUntil('six refusals reported', async () => refusals.length >= 6);
  expect(refusals.map((r) => [r.method, r.path, r.status, r.principal?.caller.subject])).toEqual([
    ['POST', '/mcp', 403, undefined],
    ['POST', '/mcp', 404, 'alice'],
    ['POST', '/mcp', 413, 'alice'],
    ['POST', '/mcp', 400, 'alice'],
    ['POST', '/mcp', 406, 'alice'],
    ['POST', '/t/someone-else/mcp', 403, 'alice'],
  ]);
  // Our own refusals carry their message; the SDK's carry the status's name at least.
  expect(refusals[2]!.reason).toContain('httpBodyBytesMax');
  expect(refusals[5]!.reason).toContain('not someone-else');
  expect(refusals.every((r) => r.reason.length > 0)).toBe(true);
});

// Authentication records its refusals itself, with the reason: reported here too, each was in the server's chain twice.
test('answered requests, authentication\'s refusals (401, 400, 403) and paths that are not MCP endpoints are not reported', async () => {
  const refusals: HttpRefusalEvent[] = [];
  const url = await startedWith(refusals);
  const answered = await post(`${url}/mcp`, JSON.stringify(initialize));
  expect(answered.status).toBe(200);
  for (const status of [401, 400, 403]) {
    expect((await post(`${url}/mcp`, JSON.stringify(initialize), { 'x-test-refuse': String(status) })).status).toBe(status);
    expect((await post(`${url}/t/acme/mcp`, JSON.stringify(initialize), { 'x-test-refuse': String(status) })).status).toBe(status);
  }
  expect((await fetch(`${url}/nothing-here`)).status).toBe(404);
  // A refusal after them, so that the ones before would have been reported by now.
  expect((await post(`${url}/mcp`, JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }), { 'mcp-session-id': 'gone' })).status).toBe(404);
  await waitUntil('the last refusal reported', async () => refusals.length >= 1);
  expect(refusals.map((r) => r.status)).toEqual([404]);
});

test('a call refused by admission (429) is reported in the caller tenant, on the fast path and through express', async () => {
  const refusals: HttpRefusalEvent[] = [];
  const admission: CallAdmission = {
    async admit(_req, res) {
      res.status(429).set('Retry-After', '1').json({ error: 'busy' });
      return false;
    },
  };
  http = await startNotesHttp({ authenticate: refusingAuthenticate, admission, onRefusal: (event) => refusals.push(event) });
  const url = http.serving.url;
  const ping = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' });
  // With a session id and a plain JSON body the fast path takes the call; without one, express does.
  expect((await post(`${url}/mcp`, ping, { [subjectHeader]: 'bob', 'mcp-session-id': 'any' })).status).toBe(429);
  expect((await post(`${url}/mcp`, JSON.stringify(initialize), { [subjectHeader]: 'carol' })).status).toBe(429);
  await waitUntil('two refusals reported', async () => refusals.length >= 2);
  expect(refusals.map((r) => [r.status, r.principal?.caller.subject])).toEqual([[429, 'bob'], [429, 'carol']]);
});
