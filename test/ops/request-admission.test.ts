/**
 * HTTP admission of MCP calls on a real server (127.0.0.1, port 0): a call over its tenant's
 * limits is refused before its body is read; a call holds its slot until answered, an event
 * stream gives it back as it starts; authentication runs once per request though admission
 * and the route both ask.
 */
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import type { Authenticate } from '../../server/http/seams.js';
import { TenantLoadGuard } from '../../server/ops/load-protection.js';
import { authenticateOncePerRequest, isCallRequest, requestAdmission, tenantByAuthentication } from '../../server/ops/request-admission.js';

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

async function listen(app: express.Express): Promise<string> {
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** POST with the headers sent and `body` written (or, when undefined, a promised body never sent). */
function post(base: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; request: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${base}/mcp`);
    const request = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(body?.length ?? 1_000), ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      if (res.headers['content-type']?.startsWith('text/event-stream')) return resolve({ status: res.statusCode!, headers: res.headers, text, request });
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text, request }));
    });
    request.on('error', reject);
    if (body === undefined) request.flushHeaders();
    else request.end(body);
  });
}

test('a call over its tenant limits is refused (429, Retry-After) before its body is read', async () => {
  const guard = new TenantLoadGuard({ ratePerSecond: 0.01, burst: 1, inFlightMax: 4, queuedMax: 4 });
  const app = express();
  app.use(requestAdmission({ guard, tenantOf: (req) => req.header('x-test-tenant'), refusalHoldMs: 0 }));
  app.post('/mcp', express.json(), (req, res) => res.json({ got: req.body as unknown }));
  const base = await listen(app);
  const first = await post(base, { 'x-test-tenant': 'a' }, '{"n":1}');
  expect(first.status).toBe(200);
  // Its body never comes: only a refusal that reads nothing can answer it.
  const refused = await post(base, { 'x-test-tenant': 'a' });
  expect(refused.status).toBe(429);
  expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(JSON.parse(refused.text)).toMatchObject({ error: { data: { code: 'busy', limit: 'rate' } } });
  refused.request.destroy();
  expect((await post(base, { 'x-test-tenant': 'b' }, '{"n":2}')).status).toBe(200);
});

test('a call holds its slot until answered; an event stream gives it back as the stream starts', async () => {
  const guard = new TenantLoadGuard({ ratePerSecond: 1000, burst: 1000, inFlightMax: 1, aloneInFlightMax: 1, queuedMax: 1 });
  const app = express();
  app.use(requestAdmission({ guard, tenantOf: () => 't' }));
  let answerHeld: (() => void) | undefined;
  app.post('/mcp', (req, res) => {
    if (req.header('x-kind') === 'stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
    } else if (req.header('x-kind') === 'held') {
      answerHeld = () => res.json({ ok: true });
    } else {
      res.json({ ok: true });
    }
  });
  const base = await listen(app);
  const stream = await post(base, { 'x-kind': 'stream' }, '{}');
  expect(stream.status).toBe(200);
  expect(guard.stats('t')).toMatchObject({ inFlight: 0, queued: 0 });
  const held = post(base, { 'x-kind': 'held' }, '{}');
  const queued = post(base, { 'x-kind': 'plain' }, '{}');
  await expect.poll(() => guard.stats('t')).toMatchObject({ inFlight: 1, queued: 1 });
  answerHeld!();
  expect((await held).status).toBe(200);
  expect((await queued).status).toBe(200);
  expect(guard.stats('t')).toMatchObject({ inFlight: 0, queued: 0 });
  stream.request.destroy();
});

test('a call whose client leaves while it waits for a slot gives the slot back once granted', async () => {
  const guard = new TenantLoadGuard({ ratePerSecond: 1000, burst: 1000, inFlightMax: 1, aloneInFlightMax: 1, queuedMax: 4 });
  const app = express();
  app.use(requestAdmission({ guard, tenantOf: () => 't' }));
  let answerHeld: (() => void) | undefined;
  app.post('/mcp', (req, res) => {
    if (req.header('x-kind') === 'held') answerHeld = () => res.json({ ok: true });
    else res.json({ ok: true });
  });
  const base = await listen(app);
  const held = post(base, { 'x-kind': 'held' }, '{}');
  await expect.poll(() => answerHeld).toBeDefined();
  const url = new URL(`${base}/mcp`);
  const leaving = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false, headers: { 'content-type': 'application/json' } });
  leaving.on('error', () => undefined);
  leaving.end('{}');
  await expect.poll(() => guard.stats('t').queued).toBe(1);
  leaving.destroy();
  // The server has seen it go: only the held call's connection is left.
  await expect.poll(() => new Promise((resolve) => server!.getConnections((_error, count) => resolve(count)))).toBe(1);
  answerHeld!();
  expect((await held).status).toBe(200);
  await expect.poll(() => guard.stats('t')).toMatchObject({ inFlight: 0, queued: 0 });
  expect((await post(base, {}, '{}')).status).toBe(200);
});

test('authentication runs once per request although admission and the route both ask', async () => {
  let verifications = 0;
  const authenticate: Authenticate = authenticateOncePerRequest(async () => {
    verifications++;
    return localPrincipal('acme');
  });
  const guard = new TenantLoadGuard();
  const app = express();
  app.use(requestAdmission({ guard, tenantOf: tenantByAuthentication(authenticate) }));
  app.post('/mcp', async (req, res) => {
    const who = await authenticate(req);
    res.json({ tenant: 'caller' in who ? who.caller.tenant : undefined });
  });
  const base = await listen(app);
  for (let i = 0; i < 3; i++) expect(JSON.parse((await post(base, {}, '{}')).text)).toEqual({ tenant: 'acme' });
  expect(verifications).toBe(3);
});

test('only POSTs to the MCP call routes are admitted as calls', () => {
  const req = (method: string, path: string) => ({ method, path }) as express.Request;
  expect(isCallRequest(req('POST', '/mcp'))).toBe(true);
  expect(isCallRequest(req('POST', '/t/acme/mcp'))).toBe(true);
  expect(isCallRequest(req('POST', '/messages'))).toBe(true);
  expect(isCallRequest(req('GET', '/mcp'))).toBe(false);
  expect(isCallRequest(req('GET', '/sse'))).toBe(false);
  expect(isCallRequest(req('POST', '/hooks/keycloak'))).toBe(false);
  expect(isCallRequest(req('POST', '/t/a/b/mcp'))).toBe(false);
});

/** An express app answering each POST /mcp with its parsed body, behind admission with a body deadline of `bodyMs`. */
async function echoBehindAdmission(bodyMs: number): Promise<{ guard: TenantLoadGuard; base: string }> {
  const guard = new TenantLoadGuard({ ratePerSecond: 1_000, burst: 1_000, inFlightMax: 1, queuedMax: 0 });
  const app = express();
  app.use(requestAdmission({ guard, tenantOf: (req) => req.header('x-test-tenant'), refusalHoldMs: 0, bodyMs }));
  app.post('/mcp', express.json(), (req, res) => res.json({ got: req.body as unknown }));
  return { guard, base: await listen(app) };
}

test('an admitted call whose body does not arrive in time gets 408, and its slot goes to the next call', async () => {
  const { guard, base } = await echoBehindAdmission(300);
  // Admitted, then its promised 1,000 bytes never come: it holds a slot until the deadline.
  const slow = post(base, { 'x-test-tenant': 'a' });
  await expect.poll(() => guard.stats('a').inFlight).toBe(1);
  const timedOut = await slow;
  expect(timedOut.status).toBe(408);
  expect(JSON.parse(timedOut.text)).toMatchObject({ error: { data: { code: 'timeout', limit: 'admittedBodyMsMax' } } });
  expect(timedOut.headers.connection).toBe('close');
  await expect.poll(() => guard.stats('a').inFlight).toBe(0);
  const next = await post(base, { 'x-test-tenant': 'a' }, '{"n":3}');
  expect(next.status).toBe(200);
  expect(JSON.parse(next.text)).toEqual({ got: { n: 3 } });
});

test('a body that arrives slowly but within the deadline is served as usual', async () => {
  const { base } = await echoBehindAdmission(2_000);
  const body = '{"n":4}';
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const url = new URL(`${base}/mcp`);
    const request = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(body.length), 'x-test-tenant': 'a' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    request.on('error', reject);
    request.write(body.slice(0, 3));
    setTimeout(() => request.end(body.slice(3)), 400);
  });
  expect(answer.status).toBe(200);
  expect(JSON.parse(answer.text)).toEqual({ got: { n: 4 } });
});
