/**
 * What the HTTP server refuses before any MCP handling, and how it keeps callers apart:
 * Origin (DNS rebinding), authentication refusals passed through as given, a path naming
 * another tenant, sessions bound to their principal, body size, and subscription streams
 * that only ever hear their own tenant.
 */
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import type { Principal } from '../../server/auth/principal.js';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { httpBodyBytesMax } from '../../server/http/http-server.js';
import type { Authenticate, CommitsOf, MemoryFor } from '../../server/http/seams.js';
import type { ToolCallEvent } from '../../server/mcp/surface.js';
import { connectNewerHttp, connectOlderHttp, connectOlderSse, type McpTestClient } from '../support/mcp-clients.js';
import { startNotesHttp, subjectHeader, type NotesHttp } from './fixtures/http-fixture.js';
import { createNotesMemory, notesCatalog, notesTools, type NotesMemory } from './fixtures/notes.js';
import { silentLogger } from '../../server/log.js';

const initialize = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
};

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

let cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function started(overrides: Parameters<typeof startNotesHttp>[0] = {}): Promise<NotesHttp> {
  const http = await startNotesHttp(overrides);
  cleanups.push(() => http.serving.close());
  return http;
}

async function client(connect: Promise<McpTestClient>): Promise<McpTestClient> {
  const c = await connect;
  cleanups.push(() => c.close());
  return c;
}

describe('HTTP guards', () => {
  test('binds 127.0.0.1 by default', async () => {
    const { serving } = await started();
    expect(new URL(serving.url).hostname).toBe('127.0.0.1');
  });

  test('a browser Origin that is not loopback or allowed is refused with 403, on every endpoint', async () => {
    const { serving } = await started({ allowedOrigins: ['https://app.example.com'] });
    for (const path of ['/mcp', '/messages?sessionId=x']) {
      const evil = await post(serving.url + path, initialize, { origin: 'https://evil.example' });
      expect(evil.status).toBe(403);
    }
    const evilSse = await fetch(`${serving.url}/sse`, { headers: { origin: 'http://rebind.attacker.test' } });
    expect(evilSse.status).toBe(403);
    expect((await post(`${serving.url}/mcp`, initialize, { origin: 'http://localhost:5173' })).status).toBe(200);
    expect((await post(`${serving.url}/mcp`, initialize, { origin: 'https://app.example.com' })).status).toBe(200);
  });

  test('CORS for allowed browser origins: a preflight is answered before authentication, answers name the origin and expose the session id and challenge', async () => {
    const refuseAll: Authenticate = async () => ({ status: 401, headers: { 'WWW-Authenticate': 'Bearer resource_metadata="x"' }, body: { error: 'invalid_token' } });
    for (const authenticate of [undefined, refuseAll]) {
      const { serving } = await started({ allowedOrigins: ['https://app.example.com'], ...(authenticate !== undefined && { authenticate }) });
      const origin = 'https://app.example.com';
      const preflight = await fetch(`${serving.url}/mcp`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-session-id' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(origin);
      expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('mcp-session-id');
      expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
      const answer = await post(`${serving.url}/mcp`, initialize, { origin });
      expect(answer.status).toBe(authenticate === undefined ? 200 : 401);
      expect(answer.headers.get('access-control-allow-origin')).toBe(origin);
      expect(answer.headers.get('access-control-expose-headers')?.toLowerCase()).toContain(authenticate === undefined ? 'mcp-session-id' : 'www-authenticate');
      expect((await post(`${serving.url}/mcp`, initialize)).headers.get('access-control-allow-origin')).toBeNull(); // no Origin, no CORS
      const evil = await fetch(`${serving.url}/mcp`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
      expect(evil.status).toBe(403);
      expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  test("a preflight names the methods of the endpoint it asks about, as that endpoint's 405 Allow does", async () => {
    const { serving } = await started({ allowedOrigins: ['https://app.example.com'] });
    const origin = 'https://app.example.com';
    for (const [path, method, allowed] of [
      ['/mcp', 'DELETE', 'GET,POST,DELETE'], ['/sse', 'GET', 'GET'], ['/SSE/', 'GET', 'GET'], ['/t/acme/sse', 'GET', 'GET'],
      ['/messages', 'POST', 'POST'], ['/t/acme/messages', 'POST', 'POST'],
    ] as const) {
      const preflight = await fetch(serving.url + path, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': method } });
      expect(preflight.status, path).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin'), path).toBe(origin);
      expect(preflight.headers.get('access-control-allow-methods'), path).toBe(allowed);
      if (path.startsWith('/t/')) continue; // another tenant's path: refused (403) before its method is looked at
      const other = await fetch(serving.url + path, { method: 'PUT', headers: { origin } });
      expect(other.status, path).toBe(405);
      expect(other.headers.get('allow')?.replaceAll(' ', ''), path).toBe(allowed);
    }
  });

  test('a call on a session from an allowed browser origin is answered with its CORS headers', async () => {
    const { serving } = await started({ allowedOrigins: ['https://app.example.com'] });
    const origin = 'https://app.example.com';
    const opened = await post(`${serving.url}/mcp`, initialize, { origin });
    const session = { origin, 'mcp-session-id': opened.headers.get('mcp-session-id')!, 'mcp-protocol-version': '2025-06-18' };
    expect((await post(`${serving.url}/mcp`, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status).toBe(202);
    const ping = await post(`${serving.url}/mcp`, { jsonrpc: '2.0', id: 2, method: 'ping' }, session);
    expect(ping.status).toBe(200);
    expect(ping.headers.get('access-control-allow-origin')).toBe(origin);
  });

  test('a Host header that is not loopback is refused (DNS rebinding)', async () => {
    const { serving } = await started();
    const { port } = new URL(serving.url);
    // fetch will not forge Host; a raw request can.
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', headers: { host: `attacker.test:${port}`, 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(JSON.stringify(initialize));
    });
    expect(status).toBe(403);
  });

  test('an authentication refusal is answered exactly as the authenticator says', async () => {
    const refuse: Authenticate = async () => ({
      status: 401,
      headers: { 'WWW-Authenticate': 'Bearer resource_metadata="http://x/.well-known/oauth-protected-resource"', 'Content-Type': 'application/json' },
      body: { error: 'invalid_token', error_description: 'expired' },
    });
    const { serving } = await started({ authenticate: refuse });
    for (const response of [await post(`${serving.url}/mcp`, initialize), await fetch(`${serving.url}/sse`)]) {
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('resource_metadata=');
      expect(await response.json()).toEqual({ error: 'invalid_token', error_description: 'expired' });
    }
  });

  test('a path naming another tenant than the principal is refused with 403', async () => {
    const { serving } = await started();
    expect((await post(`${serving.url}/t/other/mcp`, initialize)).status).toBe(403);
    expect((await post(`${serving.url}/t/local/mcp`, initialize)).status).toBe(200);
  });

  test('a body past httpBodyBytesMax is 413 before parsing', async () => {
    const { serving } = await started();
    const response = await post(`${serving.url}/mcp`, `{"pad":"${'x'.repeat(httpBodyBytesMax)}"}`);
    expect(response.status).toBe(413);
  });

  test('a 2025 session belongs to the principal that opened it', async () => {
    const { serving } = await started();
    const opened = await post(`${serving.url}/mcp`, initialize, { [subjectHeader]: 'alice' });
    const sessionId = opened.headers.get('mcp-session-id');
    expect(sessionId).toBeTruthy();
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} };
    const asMallory = await post(`${serving.url}/mcp`, list, { [subjectHeader]: 'mallory', 'mcp-session-id': sessionId!, 'mcp-protocol-version': '2025-06-18' });
    expect(asMallory.status).toBe(404);
    const asAlice = await post(`${serving.url}/mcp`, list, { [subjectHeader]: 'alice', 'mcp-session-id': sessionId!, 'mcp-protocol-version': '2025-06-18' });
    expect(asAlice.status).toBe(200);
  });

  test('an idle 2025 session is closed and stops listening to its tenant\'s commits', async () => {
    let stoppedListening!: () => void;
    const listenerGone = new Promise<void>((resolve) => (stoppedListening = resolve));
    const memory = createNotesMemory();
    const commitsOf: CommitsOf = (_tenant, listener) => {
      const stop = memory.store.onCommit(listener);
      return () => {
        stop();
        stoppedListening();
      };
    };
    const { serving } = await started({ commitsOf, sessionIdleMs: 1 });
    const opened = await post(`${serving.url}/mcp`, initialize);
    const sessionId = opened.headers.get('mcp-session-id')!;
    await opened.text();
    await listenerGone;
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} };
    expect((await post(`${serving.url}/mcp`, list, { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' })).status).toBe(404);
  });

  test('a 2025-era request without a session is told to initialize', async () => {
    const { serving } = await started();
    const response = await post(`${serving.url}/mcp`, { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} });
    expect(response.status).toBe(400);
  });

  test('onToolCall sees every call with principal, outcome and offset', async () => {
    const events: ToolCallEvent[] = [];
    const surface = { tools: notesTools, catalog: notesCatalog, log: silentLogger(), onToolCall: (e: ToolCallEvent) => events.push(e) };
    const { serving } = await started({ surface });
    const c = await client(connectNewerHttp({ url: `${serving.url}/mcp` }));
    await c.callTool('note_put', { id: 'h', text: 'x' });
    await c.callTool('note_get', { id: 'missing' });
    expect(events.map((e) => [e.tool, e.outcome, e.offset, e.principal.caller.tenant])).toEqual([
      ['note_put', 'ok', 0, 'local'],
      ['note_get', 'not_found', undefined, 'local'],
    ]);
  });
});

describe('tenant isolation of change notifications', () => {
  const tenantHeader = 'x-test-tenant';
  const byHeader: Authenticate = async (req: IncomingMessage) => {
    const tenant = req.headers[tenantHeader];
    const base = localPrincipal(typeof tenant === 'string' ? tenant : 'local');
    return base satisfies Principal;
  };

  test.each([
    ['older-era subscribe over Streamable HTTP', connectOlderHttp, '/mcp'],
    ['newer-era subscriptions/listen over Streamable HTTP', connectNewerHttp, '/mcp'],
    ['older-era subscribe over SSE', connectOlderSse, '/sse'],
  ] as const)('%s: a watcher hears its own tenant only', async (_name, connect, endpoint) => {
    const memories = new Map<string, NotesMemory>([
      ['acme', createNotesMemory('acme')],
      ['globex', createNotesMemory('globex')],
    ]);
    const memoryFor: MemoryFor = async (p) => ({ memory: memories.get(p.caller.tenant)!, release: () => undefined });
    const commitsOf: CommitsOf = (tenant, listener) => memories.get(tenant)!.store.onCommit(listener);
    const { serving } = await started({ authenticate: byHeader, memoryFor, commitsOf });
    const acme = await client(connect({ url: serving.url + endpoint, headers: { [tenantHeader]: 'acme' } }));
    const globex = await client(connectNewerHttp({ url: `${serving.url}/mcp`, headers: { [tenantHeader]: 'globex' } }));

    const watch = await acme.watchResource('memory://notes/shared');
    await globex.callTool('note_put', { id: 'shared', text: 'globex writes' });
    await acme.callTool('note_put', { id: 'shared', text: 'acme writes' });
    expect(await acme.nextResourceUpdate()).toBe('memory://notes/shared');
    // One update: acme's own write. globex's write to the same URI never reached acme.
    expect(acme.pendingResourceUpdates()).toEqual([]);
    expect(memories.get('acme')!.notes.notes.get('shared')?.text).toBe('acme writes');
    await watch.close();
  });
});

describe('tenant paths', () => {
  test('the legacy SSE endpoints also live under /t/:tenant/, posting back under the same prefix', async () => {
    const { serving } = await started();
    const c = await client(connectOlderSse({ url: `${serving.url}/t/local/sse` }));
    expect((await c.callTool('note_put', { id: 't', text: 'via tenant path' })).isError).toBeFalsy();
  });

  test('Streamable HTTP under /t/:tenant/mcp serves the newer era', async () => {
    const { serving } = await started();
    const c = await client(connectNewerHttp({ url: `${serving.url}/t/local/mcp` }));
    expect((await c.listTools()).length).toBeGreaterThan(0);
  });
});
