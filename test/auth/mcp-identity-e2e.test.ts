/**
 * End to end: the real HTTP server (serveHttpProcess, the real memory module and tenant
 * registry) trusting the real test issuer process, driven by real MCP clients with bearer
 * tokens. A reader cannot write; a token cannot reach another organization's tenant; 200
 * tenants working at once through a registry bound of 8 never see each other's objects.
 */
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { Client as OlderClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as OlderHttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { checkResourceAllowed, resourceUrlFromServerUrl } from '@modelcontextprotocol/sdk/shared/auth-utils.js';
import WebSocket from 'ws';
import { tokenCharsMax } from '../../server/auth/token-verifier.js';
import { wsClose } from '../../server/ws/close-codes.js';
import { connectNewerHttp, connectOlderHttp, toolErrorOf, type McpTestClient, type ToolResult } from '../support/mcp-clients.js';
import type { OidcIssuerProcess } from '../support/oidc-issuer.js';
import { openSession, post } from '../support/raw-http-session.js';
import { startTokenHttpProcess, type TokenHttpProcess } from '../support/token-http-process.js';
import { streamCuttingFetch } from '../support/stream-cutting-fetch.js';

const openTenantsMax = 8;
/** 200 concurrent tenants through 8 slots reopen a store for nearly every request: ~1000 opens. */
const isolationTimeoutMs = 240_000;
let running: TokenHttpProcess | undefined;
let idp: OidcIssuerProcess;
let base: string;

beforeAll(async () => {
  running = await startTokenHttpProcess({ openTenantsMax });
  ({ idp, base } = running);
});

afterAll(async () => {
  await running?.stop();
});

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/**
 * A tenant beyond the ones holding every store slot writes at once. Before eviction let go of
 * every kind of holder, this waited the whole slot wait (30 s) and got 429.
 */
async function newcomerWrites(tenant: string): Promise<void> {
  const token = await idp.token({ organizations: [tenant], realmRoles: ['memory-writer'], subject: `user-${tenant}` });
  const client = await connectNewerHttp({ url: `${base}/mcp`, headers: bearer(token) });
  try {
    const put = await client.callTool('object_put', { type: 'note', attributes: { owner: tenant } });
    expect(toolErrorOf(put)).toBeUndefined();
  } finally {
    await client.close();
  }
}

/** A tool call's outcome whether the server answers with an isError result or a JSON-RPC error. */
async function outcome(client: McpTestClient, name: string, args: Record<string, unknown>): Promise<{ result?: ToolResult; errorText?: string }> {
  try {
    const result = await client.callTool(name, args);
    return result.isError === true ? { result, errorText: JSON.stringify(toolErrorOf(result) ?? result.content) } : { result };
  } catch (error) {
    return { errorText: (error as Error).message };
  }
}

describe('identity through the MCP server', () => {
  test('no token: 401 naming the protected resource metadata', async () => {
    const response = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer resource_metadata="[^"]+\/\.well-known\/oauth-protected-resource\/mcp"/);
  });

  test('without IOBOXX_PUBLIC_URL the 401 and its metadata name the origin the client reached, so its resource check passes', async () => {
    // The client reached the server as localhost: a document naming 127.0.0.1 (the listening
    // address) is refused by MCP clients ("Protected resource ... does not match expected").
    const reached = `http://localhost:${new URL(base).port}`;
    const response = await fetch(`${reached}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(response.status).toBe(401);
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(response.headers.get('www-authenticate') ?? '')?.[1];
    expect(metadataUrl).toBe(`${reached}/.well-known/oauth-protected-resource/mcp`);
    const metadata = (await (await fetch(metadataUrl!)).json()) as { resource: string };
    expect(metadata.resource).toBe(`${reached}/mcp`);
    expect(checkResourceAllowed({ requestedResource: resourceUrlFromServerUrl(`${reached}/mcp`), configuredResource: metadata.resource })).toBe(true);
  });

  test(`a token up to tokenCharsMax (${tokenCharsMax}) and past it reaches the verifier: 401 naming the limit, not a bare 431`, async () => {
    const response = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { ...bearer(`${'a'.repeat(tokenCharsMax)}.b.c`), 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(((await response.json()) as { error_description: string }).error_description).toContain(`longer than ${tokenCharsMax} characters`);
  });

  test('a reader sees no write tools and a write call is refused, leaving nothing written', async () => {
    const readerToken = await idp.token({ organizations: ['readers'], realmRoles: ['memory-reader'] });
    const reader = await connectOlderHttp({ url: `${base}/mcp`, headers: bearer(readerToken) });
    const names = (await reader.listTools()).map((tool) => tool.name);
    expect(names).toContain('object_get');
    expect(names).not.toContain('object_put');
    const write = await outcome(reader, 'object_put', { type: 'note', attributes: { text: 'should not land' } });
    expect(write.errorText).toBeDefined();
    await reader.close();

    const writerToken = await idp.token({ organizations: ['readers'], realmRoles: ['memory-writer'] });
    const writer = await connectNewerHttp({ url: `${base}/mcp`, headers: bearer(writerToken) });
    const found = await writer.callTool('object_find', { type: 'note' });
    expect((found.structuredContent as { objects: unknown[] }).objects).toEqual([]);
    await writer.close();
  });

  test('a session serves the roles that opened it: a token with other roles gets 404 on it, over Streamable HTTP and HTTP+SSE', async () => {
    const who = { organizations: ['demoted'], subject: 'user-demoted' };
    const writer = bearer(await idp.token({ ...who, realmRoles: ['memory-writer'] }));
    const reader = bearer(await idp.token({ ...who, realmRoles: ['memory-reader'] }));
    const put = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'object_put', arguments: { type: 'note', attributes: { text: 'after the demotion' } } } };

    const session = await openSession(`${base}/mcp`, writer);
    const demoted = await post(`${base}/mcp`, put, { ...session, ...reader });
    expect(demoted.status).toBe(404);
    expect(await demoted.text()).toContain('roles that opened it');
    const stillWriter = await post(`${base}/mcp`, { ...put, id: 8, params: { ...put.params, arguments: { type: 'probe', attributes: {} } } }, { ...session, ...writer });
    expect(stillWriter.status).toBe(200);
    await stillWriter.text();

    // HTTP+SSE: the stream's first event names where to POST.
    const stream = await fetch(`${base}/sse`, { headers: { ...writer, accept: 'text/event-stream' }, signal: AbortSignal.timeout(20_000) });
    const reading = stream.body!.getReader();
    let head = '';
    while (!/\n\n/.test(head)) head += new TextDecoder().decode((await reading.read()).value);
    const endpoint = /data: (\S+)/.exec(head)![1]!;
    const viaSse = await post(new URL(endpoint, base).href, put, reader);
    expect(viaSse.status).toBe(404);
    await reading.cancel();

    // Nothing the demoted token sent was written; a session of its own lists no write tools.
    const own = await connectOlderHttp({ url: `${base}/mcp`, headers: reader });
    try {
      expect((await own.listTools()).map((tool) => tool.name)).not.toContain('object_put');
      expect((await own.callTool('object_find', { type: 'note' })).structuredContent).toMatchObject({ objects: [] });
    } finally {
      await own.close();
    }
  });

  test('event streams end when the token that let them in expires: a session GET stream, an HTTP+SSE session, a subscriptions/listen stream; a fresher token on the session keeps its GET stream open', async () => {
    const who = { organizations: ['expiring'], subject: 'user-expiring', realmRoles: ['memory-reader'] };
    const short = bearer(await idp.token({ ...who, ttlS: 2 }));
    const opened = Date.now();
    /** A stream's end (resolved with when), or its failure to end within 20 s. */
    const ended = async (response: Response) => {
      expect(response.status).toBe(200);
      await response.text();
      return Date.now();
    };
    const session = await openSession(`${base}/mcp`, short);
    const getStream = ended(await fetch(`${base}/mcp`, { headers: { ...session, accept: 'text/event-stream' }, signal: AbortSignal.timeout(20_000) }));
    const sseStream = ended(await fetch(`${base}/sse`, { headers: { ...short, accept: 'text/event-stream' }, signal: AbortSignal.timeout(20_000) }));
    const listen = {
      jsonrpc: '2.0', id: 3, method: 'subscriptions/listen',
      params: {
        notifications: { resourceSubscriptions: ['memory://objects/probe'] },
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '0' }, 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    };
    const listenStream = ended(await post(`${base}/mcp`, listen, { ...short, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'subscriptions/listen' }));

    // A second session whose client sends a fresher token before the first expires: its stream goes on.
    const kept = await openSession(`${base}/mcp`, short);
    const keptStream = await fetch(`${base}/mcp`, { headers: { ...kept, accept: 'text/event-stream' }, signal: AbortSignal.timeout(20_000) });
    const fresh = bearer(await idp.token({ ...who, ttlS: 60 }));
    const ping = await post(`${base}/mcp`, { jsonrpc: '2.0', id: 9, method: 'ping' }, { ...kept, ...fresh });
    expect(ping.status).toBe(200);

    for (const endedAtMs of await Promise.all([getStream, sseStream, listenStream])) expect(endedAtMs - opened).toBeLessThan(15_000);
    const keptReader = keptStream.body!.getReader();
    const stillOpen = await Promise.race([keptReader.read().then(() => false), new Promise((resolve) => setTimeout(() => resolve(true), 1_000))]);
    expect(stillOpen).toBe(true);
    await keptReader.cancel();
  }, 60_000);

  test('a session GET stream ended by its token\'s expiry resumes with a fresh token: the update committed in the gap arrives (Last-Event-ID)', async () => {
    const who = { organizations: ['resuming'], subject: 'user-resuming', realmRoles: ['memory-writer'] };
    let current = bearer(await idp.token({ ...who, ttlS: 3 }));
    const net = streamCuttingFetch(() => current);
    const updates: string[] = [];
    const subscriber = new OlderClient({ name: 'resume-e2e', version: '0' });
    subscriber.setNotificationHandler(ResourceUpdatedNotificationSchema, (note) => void updates.push(note.params.uri));
    await subscriber.connect(new OlderHttpTransport(new URL(`${base}/mcp`), {
      fetch: net.fetch,
      reconnectionOptions: { initialReconnectionDelay: 20, maxReconnectionDelay: 50, reconnectionDelayGrowFactor: 1, maxRetries: 2 },
    }));
    const writer = await connectNewerHttp({ url: `${base}/mcp`, headers: bearer(await idp.token({ ...who, ttlS: 60 })) });
    try {
      const { id } = (await writer.callTool('object_put', { type: 'note', attributes: { n: 0 } })).structuredContent as { id: string };
      const uri = `memory://objects/${id}`;
      await subscriber.subscribeResource({ uri });
      await writer.callTool('object_patch', { id, set: { n: 1 } });
      await vi.waitFor(() => expect(updates).toEqual([uri]), { timeout: 10_000 });
      net.hold();
      await vi.waitFor(() => expect(net.streamsEnded()).toBe(1), { timeout: 15_000 }); // the server ended it at the token's expiry
      current = bearer(await idp.token({ ...who, ttlS: 60 }));
      await writer.callTool('object_patch', { id, set: { n: 2 } }); // committed while no stream is open
      net.reconnect();
      await vi.waitFor(() => expect(updates).toEqual([uri, uri]), { timeout: 10_000 });
      expect(net.gets.map((get) => [get.lastEventId !== null, get.status])).toEqual([[false, 200], [true, 200]]);
    } finally {
      await writer.close();
      await subscriber.close();
    }
  }, 60_000);

  test("a token for organization A cannot reach B's tenant by path or header", async () => {
    const token = await idp.token({ organizations: ['org-a'], realmRoles: ['memory-admin'] });
    await expect(connectOlderHttp({ url: `${base}/t/org-b/mcp`, headers: bearer(token) })).rejects.toThrow();
    await expect(connectOlderHttp({ url: `${base}/mcp`, headers: { ...bearer(token), 'X-Ioboxx-Tenant': 'org-b' } })).rejects.toThrow();
    const response = await fetch(`${base}/t/org-b/mcp`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(response.status).toBe(403);
    expect(response.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  });

  test(`200 tenants at once through a bound of ${openTenantsMax} open stores: no tenant sees another's objects`, async () => {
    const tenants = Array.from({ length: 200 }, (_, index) => `iso-${String(index).padStart(3, '0')}`);
    const tokens = await Promise.all(tenants.map((tenant) => idp.token({ organizations: [tenant], realmRoles: ['memory-writer'], subject: `user-${tenant}` })));
    const seen = await Promise.all(
      tenants.map(async (tenant, index) => {
        const headers = bearer(tokens[index] as string);
        // Newer-era clients: each request takes and releases its store. (A 2025-era session holds
        // its store for the session's life, and SDK 1.x clients do not end sessions on close.)
        const client = await connectNewerHttp({ url: index % 2 === 0 ? `${base}/t/${tenant}/mcp` : `${base}/mcp`, headers });
        const texts: string[] = [];
        try {
          const put = await client.callTool('object_put', { type: 'note', attributes: { owner: tenant, secret: `secret-of-${tenant}` } });
          texts.push(JSON.stringify(put));
          const { id } = put.structuredContent as { id: string };
          const got = await client.callTool('object_get', { id });
          texts.push(JSON.stringify(got));
          const found = await client.callTool('object_find', { type: 'note' });
          texts.push(JSON.stringify(found));
          const objects = (found.structuredContent as { objects: Array<{ attributes: { owner: string } }> }).objects;
          const missing = await outcome(client, 'object_get', { id: `${id}-missing` });
          texts.push(missing.errorText ?? '');
          return { tenant, owners: objects.map((object) => object.attributes.owner), got: (got.structuredContent as { attributes: { owner: string } }).attributes.owner, texts };
        } finally {
          await client.close();
        }
      }),
    );
    for (const { tenant, owners, got, texts } of seen) {
      expect(owners, tenant).toEqual([tenant]);
      expect(got, tenant).toBe(tenant);
      const foreign = texts.join(' ').match(/iso-\d{3}/g)?.filter((name) => name !== tenant) ?? [];
      expect(foreign, `${tenant} saw other tenants' names`).toEqual([]);
    }
  }, isolationTimeoutMs);

  // Each kind of holder once kept its tenant's store (and slot) for as long as it lived, idle from here on.
  const mcpHolders: Array<[string, string, string, (token: string) => Promise<McpTestClient>]> = [
    ['sessions left open (never ended)', 'a session holds no store between its calls', 'pin', async (token) => {
      // A 2025-era session: it once held its store for as long as it lived (30 min).
      const client = await connectOlderHttp({ url: `${base}/mcp`, headers: bearer(token) });
      expect(toolErrorOf(await client.callTool('object_put', { type: 'note', attributes: { owner: 'holder' } }))).toBeUndefined();
      return client;
    }],
    ['subscriptions/listen streams', 'a listen stream holds no store (it hears commits across reopens)', 'listen', async (token) => {
      const client = await connectNewerHttp({ url: `${base}/mcp`, headers: bearer(token) });
      await client.watchResource('memory://objects/watched');
      return client;
    }],
  ];
  test.each(mcpHolders)(`%s on ${openTenantsMax} tenants do not lock another tenant out: %s`, async (_what, _outcome, prefix, hold) => {
    const holders = Array.from({ length: openTenantsMax }, (_, index) => `${prefix}-${index}`);
    const clients: McpTestClient[] = [];
    try {
      for (const tenant of holders) {
        const token = await idp.token({ organizations: [tenant], realmRoles: ['memory-writer'], subject: `user-${tenant}` });
        clients.push(await hold(token));
      }
      await newcomerWrites(`${prefix}-new`);
    } finally {
      await Promise.allSettled(clients.map((client) => client.close()));
    }
  }, 60_000);

  test(`WebSocket subscribers on ${openTenantsMax} tenants do not lock another tenant out: the evicted store's subscriber is closed 1013`, async () => {
    const holders = Array.from({ length: openTenantsMax }, (_, index) => `live-${index}`);
    const sockets: Array<{ ws: WebSocket; closed: Promise<[number, Buffer]> }> = [];
    try {
      for (const tenant of holders) {
        const token = await idp.token({ organizations: [tenant], realmRoles: ['memory-reader'], subject: `user-${tenant}` });
        // A subscriber holds its tenant's store for as long as it is connected.
        const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, 'ioboxx.v1', { headers: bearer(token) });
        const closed = once(ws, 'close') as Promise<[number, Buffer]>;
        await once(ws, 'message'); // hello
        ws.send(JSON.stringify({ type: 'subscribe', queries: [{ id: 'notes', table: 'objects', where: { type: 'note' } }] }));
        await once(ws, 'message'); // subscribed
        sockets.push({ ws, closed });
      }
      await newcomerWrites('live-new');
      // The least recently used tenant's subscriber: not always the first connected, as the
      // control plane's drains use stores too (a late drain of the first makes another the LRU).
      const [code, reason] = await Promise.race(sockets.map((socket) => socket.closed));
      expect(code).toBe(wsClose.tryAgainLater);
      expect(reason.toString()).toContain('evicted for another tenant');
    } finally {
      for (const { ws } of sockets) ws.terminate();
    }
  }, 60_000);
});
