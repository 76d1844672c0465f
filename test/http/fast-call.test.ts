/**
 * The fast path of POST /mcp (server/http/fast-call.ts) on a real server (127.0.0.1, port 0):
 * a call it takes is answered byte for byte as express answers the same call (the same
 * request sent with a query string, which only express takes), and every request it must not
 * take — a Host or Origin the guards refuse, a refused token, a body that is not plain JSON of
 * known length — reaches express, which answers as before. Admission holds a fast call's slot
 * until it is answered and refuses past the limits with the same 429.
 */
import http from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import type { Express } from 'express';
import { fastCallBodyBytes } from '../../server/http/fast-call.js';
import { isRefusal, type Authenticate } from '../../server/http/seams.js';
import { TenantLoadGuard } from '../../server/ops/load-protection.js';
import { callAdmission } from '../../server/ops/request-admission.js';
import { headerAuthenticate, startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';

const olderRevision = '2025-11-25';
const refuseHeader = 'x-test-refuse';
/** The request's body is sent only once the server has authenticated it (waiters below). */
const bodyLaterHeader = 'x-test-body-later';
const authenticatedWaiters: Array<() => void> = [];

let serving: NotesHttp | undefined;
afterEach(async () => {
  await serving?.serving.close();
  serving = undefined;
});

/** A refused token when the test header says so; the fixture's principal otherwise. */
const authenticate: Authenticate = async (req) => {
  if (req.headers[refuseHeader] !== undefined) {
    return { status: 401, headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"', 'Content-Type': 'application/json' }, body: { error: 'invalid_token' } };
  }
  if (req.headers[bodyLaterHeader] !== undefined) authenticatedWaiters.shift()?.();
  return headerAuthenticate(req);
};

interface Started {
  readonly base: string;
  /** Requests express saw (its mounted routes see every request it handles). */
  readonly expressSaw: () => number;
}

async function start(options: { admission?: ReturnType<typeof callAdmission> } = {}): Promise<Started> {
  let seen = 0;
  serving = await startNotesHttp({
    authenticate,
    ...(options.admission !== undefined && { admission: options.admission }),
    mount: (app: Express) => app.use((_req, _res, next) => {
      seen++;
      next();
    }),
  });
  return { base: serving.serving.url, expressSaw: () => seen };
}

interface RawAnswer {
  readonly status: number;
  /** Header lines as sent, in order, Date left out (it is the clock's). */
  readonly headers: string[];
  readonly body: string;
}

/** One POST on its own connection, the body written as given (bytes), the answer as sent. */
function post(base: string, path: string, headers: Record<string, string>, body: string | Buffer): Promise<RawAnswer> {
  const url = new URL(base);
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return new Promise((resolve, reject) => {
    const request = http.request({
      host: url.hostname, port: url.port, path, method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': String(bytes.length), ...headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const lines: string[] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          if (res.rawHeaders[i]!.toLowerCase() !== 'date') lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
        }
        resolve({ status: res.statusCode!, headers: lines, body: text });
      });
    });
    request.on('error', reject);
    request.end(bytes);
  });
}

async function openSession(base: string): Promise<Record<string, string>> {
  const opened = await post(base, '/mcp', {}, JSON.stringify({
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: olderRevision, capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
  }));
  expect(opened.status).toBe(200);
  const id = opened.headers.find((line) => line.toLowerCase().startsWith('mcp-session-id: '))!.slice('mcp-session-id: '.length);
  const session = { 'mcp-session-id': id, 'mcp-protocol-version': olderRevision };
  expect((await post(base, '/mcp', session, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }))).status).toBe(202);
  return session;
}

/** The same request through the fast path (/mcp) and through express (/mcp?via=express). */
async function bothWays(s: Started, headers: Record<string, string>, body: string | Buffer): Promise<{ fast: RawAnswer; viaExpress: RawAnswer }> {
  const before = s.expressSaw();
  const fast = await post(s.base, '/mcp', headers, body);
  expect(s.expressSaw(), 'express saw the call the fast path should take').toBe(before);
  const viaExpress = await post(s.base, '/mcp?via=express', headers, body);
  expect(s.expressSaw()).toBe(before + 1);
  return { fast, viaExpress };
}

describe('which requests the fast path takes (headers only)', () => {
  const limits = { allowedHostnames: ['127.0.0.1', 'localhost'], bodyBytesMax: 1_000 };
  const request = (method: string, url: string, headers: Record<string, string>) =>
    ({ method, url, headers: { host: '127.0.0.1:1', 'mcp-session-id': 's', 'content-type': 'application/json', 'content-length': '10', ...headers } }) as unknown as http.IncomingMessage;

  test('a POST /mcp on a session with a plain JSON body of known length', () => {
    expect(fastCallBodyBytes(request('POST', '/mcp', {}), limits)).toBe(10);
    expect(fastCallBodyBytes(request('POST', '/mcp', { 'content-type': 'application/json; charset=UTF-8' }), limits)).toBe(10);
  });

  test('everything else is left to express', () => {
    const leftToExpress: Array<[string, string, Record<string, string>]> = [
      ['GET', '/mcp', {}],
      ['DELETE', '/mcp', {}],
      ['POST', '/mcp?x=1', {}],
      ['POST', '/mcp/', {}],
      ['POST', '/t/local/mcp', {}],
      ['POST', '/messages', {}],
      ['POST', '/mcp', { 'mcp-session-id': undefined as unknown as string }],
      ['POST', '/mcp', { 'content-type': 'text/plain' }],
      ['POST', '/mcp', { 'content-type': 'application/json; charset=utf-16' }],
      ['POST', '/mcp', { 'content-encoding': 'gzip' }],
      ['POST', '/mcp', { 'transfer-encoding': 'chunked' }],
      ['POST', '/mcp', { 'content-length': '0' }],
      ['POST', '/mcp', { 'content-length': '1001' }],
      ['POST', '/mcp', { 'content-length': undefined as unknown as string }],
      ['POST', '/mcp', { host: 'evil.example:80' }],
      ['POST', '/mcp', { origin: 'http://localhost:3000' }], // a browser's, allowed: express adds its CORS headers
      ['POST', '/mcp', { origin: 'https://evil.example' }],
      ['POST', '/mcp', { origin: 'not a url' }],
    ];
    for (const [method, url, headers] of leftToExpress) {
      expect(fastCallBodyBytes(request(method, url, headers), limits), `${method} ${url} ${JSON.stringify(headers)}`).toBeUndefined();
    }
  });
});

describe('answers', () => {
  test('a call on the fast path is answered byte for byte as express answers it', async () => {
    const s = await start();
    const session = await openSession(s.base);
    const call = (id: number, name: string, args: Record<string, unknown>) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
    const put = await post(s.base, '/mcp', session, call(1, 'note_put', { id: 'n1', text: 'one' }));
    expect(JSON.parse(put.body)).toMatchObject({ id: 1, result: { structuredContent: { id: 'n1', version: 1 } } });
    const bodies: Array<string | Buffer> = [
      call(2, 'note_get', { id: 'n1' }), // ok
      call(3, 'note_get', { id: 'none' }), // not_found
      call(4, 'note_get', { id: 7 }), // invalid arguments
      call(5, 'no_such_tool', {}),
      JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'tools/list' }),
      JSON.stringify([{ jsonrpc: '2.0', id: 7, method: 'tools/list' }]), // a batch: the SDK transport answers
      JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'note_get', arguments: { id: 'n1' }, _meta: {} } }),
      ` \n\t${call(9, 'note_get', { id: 'n1' })}`, // JSON whitespace first
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(call(10, 'note_get', { id: 'n1' }))]), // a byte order mark
      '{"jsonrpc": "2.0", "id": 11, "method": ', // not JSON
      '"a string"', // JSON, but not an object or array (body-parser's strict rule)
      'null',
    ];
    for (const body of bodies) {
      const { fast, viaExpress } = await bothWays(s, session, body);
      expect(fast, String(body)).toEqual(viaExpress);
    }
    const notJson = await post(s.base, '/mcp', session, '{');
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body)).toMatchObject({ error: { code: -32700 } });
  });

  test('calls one after another on one keep-alive connection are all answered on that connection', async () => {
    const s = await start();
    const session = await openSession(s.base);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const url = new URL(s.base);
    const sockets = new Set<unknown>();
    const expressBefore = s.expressSaw();
    try {
      for (let id = 1; id <= 20; id++) {
        const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'note_put', arguments: { id: `k${id}`, text: 'x'.repeat(id * 500) } } });
        const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const request = http.request({
            host: url.hostname, port: url.port, path: '/mcp', method: 'POST', agent,
            headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': String(Buffer.byteLength(body)), ...session },
          }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => resolve({ status: res.statusCode!, body: text }));
          });
          request.on('socket', (socket) => sockets.add(socket));
          request.on('error', reject);
          // Every other call: headers first, the body only once the server has begun the call
          // (the server then waits for it), not in the headers' packet.
          if (id % 2 === 0) {
            authenticatedWaiters.push(() => setImmediate(() => request.end(body)));
            request.setHeader(bodyLaterHeader, '1');
            request.flushHeaders();
          } else {
            request.end(body);
          }
        });
        expect(answer.status).toBe(200);
        expect(JSON.parse(answer.body)).toMatchObject({ id, result: { structuredContent: { id: `k${id}`, version: 1 } } });
      }
      expect(sockets.size).toBe(1);
      expect(s.expressSaw()).toBe(expressBefore);
    } finally {
      agent.destroy();
    }
  });

  test('a session that is not there, or another caller\'s, is refused as express refuses it', async () => {
    const s = await start();
    const session = await openSession(s.base);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const unknown = await bothWays(s, { ...session, 'mcp-session-id': 'no-such-session' }, body);
    expect(unknown.fast).toEqual(unknown.viaExpress);
    expect(unknown.fast.status).toBe(404);
    const otherCaller = await bothWays(s, { ...session, 'x-test-subject': 'someone-else' }, body);
    expect(otherCaller.fast).toEqual(otherCaller.viaExpress);
    expect(otherCaller.fast.status).toBe(404);
  });

  test('a Host or Origin the guards refuse, a refused token and an oversized body reach express and are refused there', async () => {
    const s = await start();
    const session = await openSession(s.base);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    const refusedBy = async (headers: Record<string, string>, sent: string = body) => {
      const before = s.expressSaw();
      const answer = await post(s.base, '/mcp', { ...session, ...headers }, sent);
      return { answer, express: s.expressSaw() - before };
    };
    const origin = await refusedBy({ origin: 'https://evil.example' });
    expect(origin.answer.status).toBe(403);
    const host = await refusedBy({ host: 'evil.example' });
    expect(host.answer.status).toBe(403);
    // The guards answer before the mounted routes: express refused them, not the fast path
    // (which never answers 403 itself).
    expect(origin.express + host.express).toBe(0);
    const token = await refusedBy({ [refuseHeader]: '1' });
    expect(token.express).toBe(1);
    expect(token.answer.status).toBe(401);
    expect(token.answer.headers).toContain('WWW-Authenticate: Bearer error="invalid_token"');
    const big = await refusedBy({}, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: 'x'.repeat(2 * 1024 * 1024) } }));
    expect(big.express).toBe(1);
    expect(big.answer.status).toBe(413);
  });
});

describe('admission', () => {
  test('a fast call holds its slot until answered; past the limits it gets the same 429 as through express', async () => {
    const guard = new TenantLoadGuard({ ratePerSecond: 0.01, burst: 4, inFlightMax: 4, queuedMax: 4 });
    const s = await start({ admission: callAdmission({ guard, refusalHoldMs: 0 }) });
    // initialize and notifications/initialized take two of the four tokens.
    const session = await openSession(s.base);
    const tenant = await headerAuthenticate({ headers: {} } as http.IncomingMessage);
    if (isRefusal(tenant)) throw new Error('the fixture refused');
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'note_get', arguments: { id: 'n1' } } });
    const admitted = await post(s.base, '/mcp', session, body);
    expect(admitted.status).toBe(200);
    expect(guard.stats(tenant.caller.tenant).inFlight).toBe(0);
    // One token left: the express path takes it, then both ways are over the rate.
    expect((await post(s.base, '/mcp?via=express', session, body)).status).toBe(200);
    // Admission answers before the mounted routes: express's refusal is not counted there either.
    const fast = await post(s.base, '/mcp', session, body);
    const viaExpress = await post(s.base, '/mcp?via=express', session, body);
    expect(fast.status).toBe(429);
    expect(viaExpress.status).toBe(429);
    // The same headers in the same order (Retry-After and the body's retryAfterMs follow the clock).
    const names = (a: RawAnswer) => a.headers.map((line) => line.split(':')[0]);
    expect(names(fast)).toEqual(names(viaExpress));
    for (const answer of [fast, viaExpress]) {
      expect(JSON.parse(answer.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32000, data: { code: 'busy', limit: 'rate' } } });
    }
    expect(guard.stats(tenant.caller.tenant).inFlight).toBe(0);
  });
});
