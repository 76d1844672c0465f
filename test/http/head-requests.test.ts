/**
 * HEAD on an MCP endpoint is answered 405 with `Allow`, no body, and opens nothing. Express
 * routes HEAD to GET handlers, so `HEAD /sse` was served as the legacy stream: a session (one
 * of the bounded slots, so at the bound it pushed out a real client's session), keep-alives,
 * for a request that can never read the stream. Authentication still answers first: an
 * unauthenticated HEAD learns what an unauthenticated GET does. The real HTTP server in
 * process, over the notes fixture, `fetch` on loopback.
 */
import { afterEach, expect, test } from 'vitest';
import type { HttpRefusalEvent } from '../../server/http/refusal-audit.js';
import { singleMemory, singleMemoryCommits, type Authenticate } from '../../server/http/seams.js';
import { headerAuthenticate, startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { createNotesMemory } from '../mcp/fixtures/notes.js';
import { openSession, post } from '../support/raw-http-session.js';
import { waitUntil } from '../support/wait-until.js';

let http: NotesHttp | undefined;
afterEach(async () => {
  await http?.serving.close();
  http = undefined;
});

/** Each MCP route (two spellings express also serves among them) and the methods it serves. */
const routes: readonly (readonly [string, string])[] = [
  ['/mcp', 'GET, POST, DELETE'],
  ['/t/local/mcp', 'GET, POST, DELETE'],
  ['/sse', 'GET'],
  ['/t/local/sse', 'GET'],
  ['/SSE/', 'GET'],
  ['/messages', 'POST'],
  ['/t/local/messages', 'POST'],
];

const head = (url: string, headers: Record<string, string>) =>
  fetch(url, { method: 'HEAD', headers: { accept: 'application/json, text/event-stream', ...headers }, signal: AbortSignal.timeout(20_000) });

test.each(routes)('HEAD %s is answered 405 with Allow: %s, and opens no session nor touches the store', async (path, allow) => {
  const memory = createNotesMemory();
  let leases = 0;
  const leasing = singleMemory(memory);
  const refusals: HttpRefusalEvent[] = [];
  // One session slot: a stream the HEAD opened would take it from the session opened here.
  http = await startNotesHttp({
    memoryFor: (principal) => (leases++, leasing(principal)),
    commitsOf: singleMemoryCommits(memory),
    sessionsMax: { total: 1, perTenant: 1 },
    onRefusal: (event) => refusals.push(event),
  });
  const url = http.serving.url;
  const session = await openSession(`${url}/mcp`);
  const leasesBefore = leases;

  // With the session's id: on /mcp that is a 2025-era session's GET stream.
  const answer = await head(`${url}${path}`, session);
  expect(answer.status).toBe(405);
  expect(answer.headers.get('allow')).toBe(allow);
  expect(await answer.text()).toBe('');
  expect(leases, 'the HEAD took a lease on the store').toBe(leasesBefore);

  const ping = await post(`${url}/mcp`, { jsonrpc: '2.0', id: 1, method: 'ping' }, session);
  expect(ping.status, 'the session opened before the HEAD was closed to make room for it').toBe(200);
  // Audited as every other 405 of an MCP endpoint, with the caller.
  await waitUntil('the HEAD reported as refused', async () => refusals.some((r) => r.method === 'HEAD'));
  expect(refusals.filter((r) => r.method === 'HEAD').map((r) => [r.status, r.principal?.caller.tenant])).toEqual([[405, 'local']]);
});

test('an unauthenticated HEAD gets the answer an unauthenticated GET gets: 401, no Allow', async () => {
  const refusing: Authenticate = async (req) =>
    req.headers.authorization === undefined
      ? { status: 401, headers: { 'WWW-Authenticate': 'Bearer', 'Content-Type': 'application/json' }, body: { error: 'invalid_token' } }
      : headerAuthenticate(req);
  http = await startNotesHttp({ authenticate: refusing });
  for (const [path] of routes) {
    const getAnswer = await fetch(`${http.serving.url}${path}`, { signal: AbortSignal.timeout(20_000) });
    const headAnswer = await head(`${http.serving.url}${path}`, {});
    expect([path, headAnswer.status, headAnswer.headers.get('www-authenticate'), headAnswer.headers.get('allow')]).toEqual([path, getAnswer.status, getAnswer.headers.get('www-authenticate'), null]);
    expect(headAnswer.status).toBe(401);
  }
});
