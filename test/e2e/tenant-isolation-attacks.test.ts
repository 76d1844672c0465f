/**
 * An attacker with a valid token of tenant org-a (alice), and forged ones, against the real built
 * server over loopback HTTP trusting the real test issuer process: each path tried to read,
 * write, subscribe to or learn about org-b's memory, or to be served without a valid token.
 *
 * Paths proved elsewhere are not repeated: `/t/org-b/mcp` and the tenant header with A's token,
 * a session reused with other roles, event streams ending with their token
 * (test/auth/mcp-identity-e2e.test.ts); alg none, HS256 keyed with the public key, wrong
 * issuer or audience, expired and tampered tokens, key rotation and the bound on JWKS refetches
 * for unknown kids (test/auth/token-verifier.test.ts); WebSocket tenants and token switches
 * (test/ws/ws-auth.test.ts); URI parsing (test/resources/memory-catalog.test.ts).
 */
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectNewerHttp, connectOlderHttp, toolErrorOf, type McpTestClient } from '../support/mcp-clients.js';
import { oidcEnvForIssuer, startOidcIssuer, tamperPayload, type OidcIssuerProcess } from '../support/oidc-issuer.js';
import { olderRevision, openSession } from '../support/raw-http-session.js';
import { waitUntil } from '../support/wait-until.js';
import { TestClient } from '../ws/ws-test-client.js';
import { startHttpServer, type ServerProcess } from './server-process.js';

let idp: OidcIssuerProcess;
let dataDir: string;
let localDataDir: string;
let server: ServerProcess;
/** Local mode (no issuer) bound to every interface, one call at a time per tenant. */
let localServer: ServerProcess;
let base: string;
let alice: string;
let bob: string;
/** A member of both organizations, with the same roles in each. */
let carol: string;
const bobSecret = 'bob-secret-7f3a';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: olderRevision, capabilities: {}, clientInfo: { name: 'attacker', version: '0' } } };
const ping = { jsonrpc: '2.0', id: 2, method: 'ping' };

beforeAll(async () => {
  idp = await startOidcIssuer();
  [dataDir, localDataDir] = await Promise.all([mkdtemp(path.join(tmpdir(), 'ioboxx-attacks-')), mkdtemp(path.join(tmpdir(), 'ioboxx-attacks-local-'))]);
  [server, localServer] = await Promise.all([
    startHttpServer({ ...oidcEnvForIssuer(idp), IOBOXX_DATA_DIR: dataDir }),
    startHttpServer({
      IOBOXX_DATA_DIR: localDataDir, IOBOXX_HTTP_HOST: '0.0.0.0',
      IOBOXX_TENANT_INFLIGHT_MAX: '1', IOBOXX_TENANT_ALONE_INFLIGHT_MAX: '1', IOBOXX_TENANT_QUEUE_MAX: '0',
    }),
  ]);
  base = server.url;
  const roles = ['memory-writer', 'auditor'];
  [alice, bob, carol] = await Promise.all([
    idp.token({ organizations: ['org-a'], realmRoles: roles, subject: 'alice', ttlS: 600 }),
    idp.token({ organizations: ['org-b'], realmRoles: roles, subject: 'bob', ttlS: 600 }),
    idp.token({ organizations: ['org-a', 'org-b'], realmRoles: roles, subject: 'carol', ttlS: 600 }),
  ]);
  await withClient(bob, (client) => client.callTool('object_put', { id: 'plan-b', type: 'note', attributes: { secret: bobSecret } }));
  await withClient(alice, (client) => client.callTool('object_put', { id: 'plan-a', type: 'note', attributes: { owner: 'alice' } }));
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([server?.stop(), localServer?.stop()]);
  await idp?.stop();
  await Promise.all([dataDir, localDataDir].map((dir) => (dir === undefined ? undefined : rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }))));
});

async function withClient<T>(token: string, work: (client: McpTestClient) => Promise<T>, url = `${base}/mcp`): Promise<T> {
  const client = await connectNewerHttp({ url, headers: bearer(token) });
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

/** One raw request; its status and body text. */
async function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: unknown }): Promise<{ status: number; text: string }> {
  const response = await fetch(url, {
    method: init.method ?? 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...init.headers },
    ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
    signal: AbortSignal.timeout(20_000),
  });
  return { status: response.status, text: await response.text() };
}

/** A legacy HTTP+SSE stream: the endpoint its first event names, and its later events. */
async function openSse(url: string, headers: Record<string, string>): Promise<{ endpoint: string; nextEvent(): Promise<string>; close(): void }> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  expect(response.status).toBe(200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const nextEvent = async (): Promise<string> => {
    for (;;) {
      const end = buffered.indexOf('\n\n');
      if (end !== -1) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        return event;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error('the SSE stream ended');
      buffered += decoder.decode(value, { stream: true });
    }
  };
  const endpoint = /^data: (.+)$/m.exec(await nextEvent())?.[1];
  if (endpoint === undefined) throw new Error('the SSE stream named no endpoint');
  return { endpoint, nextEvent, close: () => abort.abort() };
}

describe('tenant selection', () => {
  test("no spelling of a path or header naming org-b serves alice, odd organization claims are refused, and no directory but the two tenants' appears", async () => {
    const attempts: Array<[string, string, Record<string, string>]> = [
      ['POST', '/T/org-b/mcp', {}],
      ['POST', '/t/org-b/mcp/', {}],
      ['POST', '/t/ORG-B/mcp', {}],
      ['POST', '/t/org-b%2F..%2Forg-a/mcp', {}],
      ['POST', '/t/%6Frg-b/mcp', {}],
      ['POST', '/t/org-b/messages?sessionId=x', {}],
      ['GET', '/t/org-b/sse', {}],
      ['POST', '/mcp', { 'x-ioboxx-tenant': 'ORG-B' }],
      ['POST', '/mcp', { 'x-ioboxx-tenant': '../org-b' }],
      ['POST', '/t/org-a/mcp', { 'x-ioboxx-tenant': 'org-b' }],
    ];
    for (const [method, target, headers] of attempts) {
      const answer = await send(`${base}${target}`, { method, headers: { ...bearer(alice), ...headers }, ...(method === 'POST' && { body: initialize }) });
      expect([400, 403], `${method} ${target} ${JSON.stringify(headers)}: ${answer.text}`).toContain(answer.status);
    }
    const oddClaims: unknown[] = [['../org-b'], ['tenants/..'], ['org-b/../org-a'], ['ORG-B'], ['org-b\u0000'], 'org-b', [['org-b']], JSON.parse('{"__proto__": {"id": "1"}}'), { '..': { id: '2' } }];
    for (const organization of oddClaims) {
      const token = await idp.token({ claims: { organization }, realmRoles: ['memory-writer'] });
      const answer = await send(`${base}/mcp`, { headers: bearer(token), body: initialize });
      expect([401, 403], `organization ${JSON.stringify(organization)}: ${answer.text}`).toContain(answer.status);
    }
    expect((await readdir(path.join(dataDir, 'tenants'))).sort()).toEqual(['org-a', 'org-b']);
  });

  test('an empty tenant selection is refused as invalid, also once the token has been served', async () => {
    const dave = await idp.token({ organizations: ['org-a'], realmRoles: ['memory-writer'], subject: 'dave' });
    await openSession(`${base}/mcp`, bearer(dave)); // the token served once: its verification and principal are remembered
    const answer = await send(`${base}/mcp`, { headers: { ...bearer(dave), 'x-ioboxx-tenant': '' }, body: initialize });
    expect(answer.status, answer.text).toBe(400);
    expect(answer.text).toContain('invalid tenant id');
    const upgrade = await TestClient.refusal(`${base.replace('http', 'ws')}/ws`, { token: dave, protocols: ['ioboxx.v1'], headers: { 'x-ioboxx-tenant': '' } });
    expect(upgrade.status, upgrade.body).toBe(400);
  });
});

describe('sessions belong to the principal that opened them', () => {
  test("alice's 2025-era session answers bob's token 404 on POST (fast path and express), GET and DELETE, and goes on serving alice; bob's refuses alice", async () => {
    const session = await openSession(`${base}/mcp`, bearer(alice));
    const asBob = { ...session, ...bearer(bob) };
    const tries = [
      await send(`${base}/mcp`, { headers: asBob, body: { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'object_get', arguments: { id: 'plan-a' } } } }),
      await send(`${base}/mcp?via=express`, { headers: asBob, body: { jsonrpc: '2.0', id: 4, method: 'resources/read', params: { uri: 'memory://objects/plan-a' } } }),
      await send(`${base}/mcp`, { method: 'GET', headers: { ...asBob, accept: 'text/event-stream' } }),
      await send(`${base}/mcp`, { method: 'DELETE', headers: asBob }),
    ];
    // Word for word the answer to a session id nobody opened: nothing tells bob the id is live.
    const unknown = await send(`${base}/mcp?via=express`, { headers: { ...asBob, 'mcp-session-id': crypto.randomUUID() }, body: ping });
    for (const answer of tries) {
      expect(answer.status, answer.text).toBe(404);
      expect(answer.text.replace(/"id":\d+/, '"id":null')).toBe(unknown.text);
    }
    const stillAlice = await send(`${base}/mcp`, { headers: session, body: ping });
    expect(stillAlice.status).toBe(200);
    expect(JSON.parse(stillAlice.text)).toMatchObject({ id: 2, result: {} });

    const bobSession = await openSession(`${base}/mcp`, bearer(bob));
    const asAlice = await send(`${base}/mcp`, { headers: { ...bobSession, ...bearer(alice) }, body: { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'object_get', arguments: { id: 'plan-b' } } } });
    expect(asAlice.status, asAlice.text).toBe(404);
    expect(asAlice.text).not.toContain(bobSecret);
  });

  test("alice's HTTP+SSE session takes no message from bob, under /messages or /t/org-b/messages", async () => {
    const stream = await openSse(`${base}/sse`, bearer(alice));
    try {
      for (const prefix of ['', '/t/org-b']) {
        const answer = await send(`${base}${prefix}${stream.endpoint}`, { headers: bearer(bob), body: initialize });
        expect(answer.status, `${prefix}${stream.endpoint}: ${answer.text}`).toBe(404);
      }
      expect((await send(`${base}${stream.endpoint}`, { headers: bearer(alice), body: initialize })).status).toBe(202);
      // The first message on alice's stream is the answer to her own initialize: bob's were never taken.
      const first = JSON.parse(/^data: (.+)$/m.exec(await stream.nextEvent())![1]!) as { id?: unknown; result?: unknown };
      expect(first).toMatchObject({ id: 1, result: { protocolVersion: expect.any(String) } });
    } finally {
      stream.close();
    }
  });

  test('a member of both organizations cannot carry a session from org-a to org-b, over Streamable HTTP or HTTP+SSE', async () => {
    const session = await openSession(`${base}/t/org-a/mcp`, bearer(carol));
    expect((await send(`${base}/t/org-b/mcp`, { headers: session, body: ping })).status).toBe(404);
    expect((await send(`${base}/mcp`, { headers: { ...session, 'x-ioboxx-tenant': 'org-b' }, body: ping })).status).toBe(404);
    expect((await send(`${base}/t/org-a/mcp`, { headers: session, body: ping })).status).toBe(200);

    const stream = await openSse(`${base}/t/org-a/sse`, bearer(carol));
    try {
      expect(stream.endpoint.startsWith('/t/org-a/messages?sessionId=')).toBe(true);
      const other = await send(`${base}${stream.endpoint.replace('/t/org-a/', '/t/org-b/')}`, { headers: bearer(carol), body: initialize });
      expect(other.status, other.text).toBe(404);
    } finally {
      stream.close();
    }
  });
});

describe('resources name no tenant', () => {
  test("reading org-b's object from org-a, under every URI spelling, answers as for an id no tenant has", async () => {
    const client = await connectOlderHttp({ url: `${base}/mcp`, headers: bearer(alice) });
    try {
      const refusal = async (uri: string): Promise<string> => {
        const error = await client.readResource(uri).then(() => undefined, (e: Error) => e.message);
        if (error === undefined) throw new Error(`${uri} was read`);
        expect(error).not.toContain(bobSecret);
        return error;
      };
      expect(await refusal('memory://objects/plan-b')).toBe((await refusal('memory://objects/never-was')).replaceAll('never-was', 'plan-b'));
      const spellings = [
        'memory://objects/plan%2Db', 'memory://objects/plan%252Db', 'memory://org-b/objects/plan-b', 'memory://objects/org-b%2Fplan-b',
        'memory://objects/..%2F..%2Forg-b%2Fplan-b', 'memory://objects/%2e%2e', 'memory://objects/\uff50lan-b', 'memory://objects/plan-b%00',
        'memory://objects/plan-b?tenant=org-b', 'memory://objects/plan-b#org-b', 'memory://org-b@objects/plan-b', 'MEMORY://objects/plan-b',
      ];
      for (const uri of spellings) await refusal(uri);
      expect(toolErrorOf(await client.callTool('object_get', { id: 'plan-b' }))?.code).toBe('not_found');
    } finally {
      await client.close();
    }
  });

  test("a subscription in org-a to the id of org-b's object hears org-a's writes only, in both eras", async () => {
    const uri = 'memory://objects/watched-b';
    await withClient(bob, (client) => client.callTool('object_put', { id: 'watched-b', type: 'note', attributes: { secret: bobSecret } }));
    const watchers = [await connectOlderHttp({ url: `${base}/mcp`, headers: bearer(alice) }), await connectNewerHttp({ url: `${base}/mcp`, headers: bearer(alice) })];
    try {
      const watches = await Promise.all(watchers.map((client) => client.watchResource(uri)));
      const patched = await withClient(bob, (client) => client.callTool('object_patch', { id: 'watched-b', set: { secret: `${bobSecret}-2` } }));
      expect(toolErrorOf(patched)).toBeUndefined();
      // bob's commit was durable, and published to its listeners, before alice's write began.
      await withClient(alice, (client) => client.callTool('object_put', { id: 'watched-b', type: 'note', attributes: { owner: 'alice' } }));
      for (const watcher of watchers) {
        expect(await watcher.nextResourceUpdate()).toBe(uri);
        expect(watcher.pendingResourceUpdates(), watcher.era).toEqual([]);
        expect(JSON.parse((await watcher.readResource(uri)).contents[0]!.text!)).toMatchObject({ attributes: { owner: 'alice' } });
      }
      await Promise.all(watches.map((watch) => watch.close()));
    } finally {
      await Promise.all(watchers.map((client) => client.close()));
    }
  });
});

describe('the audit trail of a tenant', () => {
  test("org-b's access log holds no row of alice's attempts, and org-a's names nothing of org-b", async () => {
    type Row = { subject: string; action: string; target: string; outcome: string };
    const rowsOf = (token: string): Promise<Row[]> =>
      withClient(token, async (client) => {
        const listed = await client.callTool('access_log_list', { limit: 200 });
        expect(toolErrorOf(listed)).toBeUndefined();
        return listed.structuredContent!['entries'] as Row[];
      });
    // alice tries bob's session once more, then bob makes a call: once bob's row of it is in his
    // log, a row of alice's attempt enqueued in his tenant before it would be too.
    const bobSession = await openSession(`${base}/mcp`, bearer(bob));
    expect((await send(`${base}/mcp`, { headers: { ...bobSession, ...bearer(alice) }, body: ping })).status).toBe(404);
    let aliceRows: Row[] = [];
    await waitUntil("alice's refused attempt in org-a's access log", async () => {
      aliceRows = await rowsOf(alice);
      return aliceRows.some((row) => row.subject === 'alice' && row.action === 'http' && row.outcome === '404');
    });
    const marker = await send(`${base}/mcp`, { headers: bobSession, body: { jsonrpc: '2.0', id: 9, method: 'resources/read', params: { uri: 'memory://objects/audit-marker' } } });
    expect(marker.status).toBe(200);
    let bobRows: Row[] = [];
    await waitUntil("bob's marker read in org-b's access log", async () => {
      bobRows = await rowsOf(bob);
      return bobRows.some((row) => row.target === 'memory://objects/audit-marker');
    });
    // carol is a member of org-b too: her attempts there (the session test) are org-b's to see.
    expect(bobRows.filter((row) => row.subject !== 'bob' && row.subject !== 'carol')).toEqual([]);
    expect(JSON.stringify(aliceRows)).not.toContain(bobSecret);
    expect(aliceRows.filter((row) => row.subject === 'bob')).toEqual([]);
  });
});

describe('forged tokens', () => {
  /** Tokens an attacker signs with a key of their own, each naming org-b with alice's claims and a header trick. */
  async function forgedTokens(): Promise<Record<string, string>> {
    const certs = (await (await fetch(`${idp.issuer()}/protocol/openid-connect/certs`)).json()) as { keys: Array<{ kid: string; alg?: string; use?: string }> };
    const signingKid = certs.keys.find((key) => key.alg === 'RS256')!.kid;
    const encryptionKid = certs.keys.find((key) => key.use === 'enc')!.kid;
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const attackerJwk = await exportJWK(publicKey);
    const claims: JWTPayload = { ...(JSON.parse(Buffer.from(alice.split('.')[1]!, 'base64url').toString('utf8')) as JWTPayload), organization: ['org-b'] };
    const signed = (header: JWTHeaderParameters) => new SignJWT(claims).setProtectedHeader(header).sign(privateKey);
    return {
      'the issuer kid with the attacker key embedded as jwk': await signed({ alg: 'RS256', kid: signingKid, jwk: attackerJwk }),
      'an embedded jwk and no kid': await signed({ alg: 'RS256', jwk: attackerJwk }),
      'a jku naming the attacker key set': await signed({ alg: 'RS256', kid: 'attacker', jku: `${idp.url}/attacker/certs` }),
      "the kid of the issuer's encryption key": await signed({ alg: 'RS256', kid: encryptionKid }),
      "alice's token with org-b put in its payload": tamperPayload(alice, { organization: ['org-b'] }),
    };
  }

  test('are refused on every transport: a new request, an open session (fast path), HTTP+SSE and WebSocket upgrade and auth message', async () => {
    const session = await openSession(`${base}/mcp`, bearer(alice));
    const stream = await openSse(`${base}/sse`, bearer(alice));
    const wsBase = base.replace('http', 'ws');
    try {
      for (const [trick, token] of Object.entries(await forgedTokens())) {
        const answers = {
          new: (await send(`${base}/mcp`, { headers: bearer(token), body: initialize })).status,
          session: (await send(`${base}/mcp`, { headers: { ...session, ...bearer(token) }, body: ping })).status,
          sse: (await send(`${base}/sse`, { method: 'GET', headers: { ...bearer(token), accept: 'text/event-stream' } })).status,
          messages: (await send(`${base}${stream.endpoint}`, { headers: bearer(token), body: ping })).status,
          upgrade: (await TestClient.refusal(`${wsBase}/ws`, { token, protocols: ['ioboxx.v1'] })).status,
        };
        expect(answers, trick).toEqual({ new: 401, session: 401, sse: 401, messages: 401, upgrade: 401 });
        const browser = await TestClient.connect(`${wsBase}/t/org-b/ws`, { protocols: ['ioboxx.v1'] });
        await browser.next((m) => m['type'] === 'hello');
        browser.send({ type: 'auth', token });
        expect((await browser.closed).code, trick).toBe(4401);
      }
      // alice's own session and stream are untouched by all that.
      expect((await send(`${base}/mcp`, { headers: session, body: ping })).status).toBe(200);
      expect((await send(`${base}${stream.endpoint}`, { headers: bearer(alice), body: ping })).status).toBe(202);
    } finally {
      stream.close();
    }
  });
});

describe('local mode and load limits', () => {
  const loopbackUrl = () => localServer.url.replace('0.0.0.0', '127.0.0.1');

  test('local mode serves callers on this machine only: a peer on another interface gets no memory over /mcp, /sse or /ws', async () => {
    const outside = Object.values(networkInterfaces()).flat().find((address) => address?.family === 'IPv4' && !address.internal)?.address;
    if (outside === undefined) throw new Error('this test calls the server from a non-loopback IPv4 address, and the machine has none');
    const port = new URL(loopbackUrl()).port;
    const remote = `http://${outside}:${port}`;
    expect((await send(`${loopbackUrl()}/mcp`, { body: initialize })).status).toBe(200);
    const mcp = await send(`${remote}/mcp`, { body: initialize });
    expect(mcp.status, mcp.text).toBe(403);
    expect(mcp.text).toContain('IOBOXX_OIDC_ISSUER');
    expect((await send(`${remote}/sse`, { method: 'GET', headers: { accept: 'text/event-stream' } })).status).toBe(403);
    expect((await TestClient.refusal(`ws://${outside}:${port}/ws`, { protocols: ['ioboxx.v1'] })).status).toBe(403);
  });

  test('local mode refuses a request a proxy on this machine forwarded (it comes over loopback for a caller who may be anywhere)', async () => {
    const url = loopbackUrl();
    const forwarded: Record<string, string>[] = [{ 'x-forwarded-for': '203.0.113.9' }, { forwarded: 'for=203.0.113.9' }, { 'x-real-ip': '203.0.113.9' }, { via: '1.1 nginx' }];
    for (const header of forwarded) {
      const name = Object.keys(header)[0]!;
      const mcp = await send(`${url}/mcp`, { headers: header, body: initialize });
      expect(mcp.status, `${name}: ${mcp.text}`).toBe(403);
      expect(mcp.text).toContain(`${name} header`);
      expect((await send(`${url}/sse`, { method: 'GET', headers: { accept: 'text/event-stream', ...header } })).status, name).toBe(403);
      expect((await TestClient.refusal(`${url.replace('http', 'ws')}/ws`, { protocols: ['ioboxx.v1'], headers: header })).status, name).toBe(403);
    }
    expect((await send(`${url}/mcp`, { body: initialize })).status).toBe(200); // the machine's own clients are served
  });

  test('the per-tenant call limit holds for every spelling of the MCP routes that express serves', async () => {
    const url = loopbackUrl();
    const { hostname, port } = new URL(url);
    // A call whose body never comes: admitted, it holds the tenant's one slot (until admittedBodyMsMax).
    const held = connect(Number(port), hostname);
    await once(held, 'connect');
    held.write(`POST /mcp HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 64\r\n\r\n`);
    try {
      await waitUntil("the held call takes the tenant's one slot", async () => (await send(`${url}/mcp`, { body: initialize })).status === 429);
      const spellings = ['/MCP', '/mcp/', '/Mcp', '/t/local/MCP', '/t/local/mcp/', '/Messages', '/messages/', '/T/local/messages'];
      const statuses = await Promise.all(spellings.map(async (spelling) => [spelling, (await send(`${url}${spelling}`, { body: initialize })).status]));
      expect(statuses).toEqual(spellings.map((spelling) => [spelling, 429]));
    } finally {
      held.destroy();
    }
  });
});
