/**
 * A client that holds an event stream open and never reads it is cut once the stream owes it
 * more than streamBacklogBytesMax (stream-backlog.ts), while a client that reads keeps every
 * update: a 2026-era subscriptions/listen stream, a 2025-era session's GET stream, a legacy
 * HTTP+SSE session's stream. Before,
 * the SDK queued each update for the stalled client without end: a tenant's writer and one such
 * stream could grow the server's memory until it died, for every tenant.
 * The real HTTP server in process over the notes fixture, a real 2.x SDK client reading, and a
 * raw HTTP client that stops reading.
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { afterEach, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { connectNewerHttp, connectOlderHttp, connectOlderSse, newerRevision, type McpTestClient } from '../support/mcp-clients.js';
import { bothAccepted, olderRevision, openSession, post } from '../support/raw-http-session.js';
import { waitUntil } from '../support/wait-until.js';

let http: NotesHttp | undefined;
const clients: McpTestClient[] = [];
const raw: ClientRequest[] = [];
afterEach(async () => {
  for (const req of raw.splice(0)) req.destroy();
  for (const client of clients.splice(0)) await client.close().catch(() => undefined);
  await http?.serving.close();
  http = undefined;
});

/** Long ids make each update about 1 KiB, so the kernel's socket buffers fill after a few thousand. */
const id = `n-${'x'.repeat(900)}`;
const uri = `memory://notes/${id}`;
const backlogBytesMax = 256 * 1024;

/** A listen whose client reads the acknowledgement, then nothing more. */
async function stalledListen(url: string): Promise<IncomingMessage> {
  const body = JSON.stringify({
    jsonrpc: '2.0', id: 'stalled', method: 'subscriptions/listen',
    params: { _meta: { 'io.modelcontextprotocol/protocolVersion': newerRevision, 'io.modelcontextprotocol/clientInfo': { name: 'stalled', version: '0' }, 'io.modelcontextprotocol/clientCapabilities': {} }, notifications: { resourceSubscriptions: [uri] } },
  });
  return new Promise((resolve, reject) => {
    const req = request(`${url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-method': 'subscriptions/listen', 'mcp-protocol-version': newerRevision },
    }, (res) => {
      res.once('data', (chunk: Buffer) => {
        res.pause();
        const text = chunk.toString('utf8');
        if (text.includes('notifications/subscriptions/acknowledged')) resolve(res);
        else reject(new Error(`the listen was not acknowledged: ${text}`));
      });
    });
    req.on('error', reject);
    raw.push(req);
    req.end(body);
  });
}

/** A session's GET stream (the session subscribed to `uri`) whose client reads nothing once the stream opened. */
async function stalledSessionStream(url: string): Promise<void> {
  const session = await openSession(`${url}/mcp`);
  const subscribed = await post(`${url}/mcp`, { jsonrpc: '2.0', id: 1, method: 'resources/subscribe', params: { uri } }, session);
  expect(subscribed.status).toBe(200);
  await subscribed.text();
  await new Promise<void>((resolve, reject) => {
    const req = request(`${url}/mcp`, { method: 'GET', headers: { ...session, accept: bothAccepted } }, (res) => {
      res.pause();
      if (res.statusCode === 200) resolve();
      else reject(new Error(`the GET stream was refused: ${res.statusCode}`));
    });
    req.on('error', reject);
    raw.push(req);
    req.end();
  });
}

/** A legacy HTTP+SSE session subscribed to `uri`, whose client reads nothing after the endpoint event. */
async function stalledSseStream(url: string): Promise<void> {
  const messagesPath = await new Promise<string>((resolve, reject) => {
    const req = request(`${url}/sse`, { method: 'GET', headers: { accept: 'text/event-stream' } }, (res) => {
      res.once('data', (chunk: Buffer) => {
        res.pause();
        const endpoint = /data: (\S+)/.exec(chunk.toString('utf8'))?.[1];
        if (endpoint === undefined) reject(new Error(`no endpoint event: ${chunk.toString('utf8')}`));
        else resolve(endpoint);
      });
    });
    req.on('error', reject);
    raw.push(req);
    req.end();
  });
  const messages = `${url}${messagesPath}`;
  const initialize = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: olderRevision, capabilities: {}, clientInfo: { name: 'stalled', version: '0' } } };
  for (const message of [initialize, { jsonrpc: '2.0', method: 'notifications/initialized' }, { jsonrpc: '2.0', id: 1, method: 'resources/subscribe', params: { uri } }]) {
    const posted = await post(messages, message, {});
    expect(posted.status).toBe(202);
    await posted.text();
  }
}

/**
 * Updates of `uri` until a stream is cut (or `updatesMax`), at the pace of `reader` (never more
 * than `window` ahead of it): it keeps up by construction, so only the stalled stream can come
 * to owe anything. Returns the updates published, each of which `reader` has heard.
 */
async function publishUntilCut(reader: McpTestClient, cuts: readonly string[]): Promise<number> {
  const caller = localPrincipal().caller;
  const window = 32;
  const updatesMax = 40_000; // about 40 MiB: far past the bound and any socket buffer
  let published = 0;
  let read = 0;
  while (cuts.length === 0 && published < updatesMax) {
    await http!.memory.notes.put(id, String(published), caller);
    published++;
    while (published - read > window) {
      expect(await reader.nextResourceUpdate()).toBe(uri);
      read++;
    }
  }
  expect(cuts, `the stalled stream was still open after ${published} updates (${published} KiB or so owed)`).toEqual(['local']);
  while (read < published) {
    expect(await reader.nextResourceUpdate()).toBe(uri);
    read++;
  }
  return published;
}

const sessionCases = [
  { stream: 'a session GET stream', reader: 'session', connect: (url: string) => connectOlderHttp({ url: `${url}/mcp` }), stall: stalledSessionStream },
  { stream: 'a legacy SSE stream', reader: 'SSE session', connect: (url: string) => connectOlderSse({ url: `${url}/sse` }), stall: stalledSseStream },
];
for (const { stream, reader: readerKind, connect, stall } of sessionCases) {
  test(`${stream} whose client stops reading is cut past streamBacklogBytesMax; a reading ${readerKind} gets every update`, async () => {
    const cuts: string[] = [];
    http = await startNotesHttp({ streamBacklogBytesMax: backlogBytesMax, onStreamCut: (tenant) => cuts.push(tenant) });
    const reader = await connect(http.serving.url);
    clients.push(reader);
    await reader.watchResource(uri);
    await stall(http.serving.url);
    await publishUntilCut(reader, cuts);
    await http.memory.notes.put(id, 'after the cut', localPrincipal().caller);
    expect(await reader.nextResourceUpdate()).toBe(uri);
    expect(cuts).toEqual(['local']);
  });
}

test('a listen stream whose client stops reading is cut past streamBacklogBytesMax; a reading one gets every update', async () => {
  const cuts: string[] = [];
  http = await startNotesHttp({ streamBacklogBytesMax: backlogBytesMax, onStreamCut: (tenant) => cuts.push(tenant), listenStreamsMax: { total: 2, perTenant: 2 } });
  const reader = await connectNewerHttp({ url: `${http.serving.url}/mcp` });
  clients.push(reader);
  await reader.watchResource(uri);
  await stalledListen(http.serving.url);

  await publishUntilCut(reader, cuts);
  const caller = localPrincipal().caller;

  // The cut stream gave its place back (2 per tenant): another listen is let in, and hears the next update.
  const late = await connectNewerHttp({ url: `${http.serving.url}/mcp` });
  clients.push(late);
  await waitUntil('the cut stream\'s place given back', () => late.watchResource(uri).then(() => true, () => false));
  await http.memory.notes.put(id, 'after the cut', caller);
  expect(await late.nextResourceUpdate()).toBe(uri);
  expect(await reader.nextResourceUpdate()).toBe(uri);
  expect(cuts).toEqual(['local']);
});
