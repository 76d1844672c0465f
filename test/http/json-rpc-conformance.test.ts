/**
 * JSON-RPC 2.0 as a client author tests it over Streamable HTTP, by hand (fetch) where SDK
 * clients cannot send the input: a body that is JSON but no JSON-RPC message is an Invalid
 * Request (-32600, its id when readable), as stdio answers it (stdio-bad-lines.test.ts), not a
 * Parse error (-32700, for text that is not JSON); the session serves on after each.
 */
import { Client as OlderClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as OlderHttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as NewerClient, StreamableHTTPClientTransport as NewerHttpTransport } from '@modelcontextprotocol/client';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createNotesMemory, holdNotePuts, notePut } from '../mcp/fixtures/notes.js';
import { StoreFailed } from '../../storage/errors.js';
import { singleMemory } from '../../server/http/seams.js';
import { retryLaterCode } from '../../server/mcp/error-mapping.js';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { requestCancelledCode } from '../../server/http/session-transport.js';
import { newerRevision } from '../support/mcp-clients.js';
import { openSession, post } from '../support/raw-http-session.js';

let serving: NotesHttp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await serving?.serving.close();
  serving = undefined;
});

const invalidRequest = -32600;
const invalidParams = -32602;
const clientInfo = { name: 'conformance', version: '0' };

/** A raw request through a real client of `era` (the SDK clients never send a cursor the server did not give). */
async function requestOf(era: 'older' | 'newer', url: string): Promise<{ request(method: string, params: Record<string, unknown>): Promise<unknown>; close(): Promise<void> }> {
  if (era === 'older') {
    const client = new OlderClient(clientInfo);
    await client.connect(new OlderHttpTransport(new URL(url)));
    const { ResultSchema } = await import('@modelcontextprotocol/sdk/types.js');
    return { request: (method, params) => client.request({ method, params }, ResultSchema), close: () => client.close() };
  }
  const client = new NewerClient(clientInfo, { versionNegotiation: { mode: { pin: newerRevision } } });
  await client.connect(new NewerHttpTransport(new URL(url)));
  return { request: (method, params) => client.request({ method, params } as never), close: () => client.close() };
}

interface Answer {
  readonly jsonrpc: string;
  readonly id?: unknown;
  readonly result?: unknown;
  readonly error?: { code: number; message: string };
}

describe('a 2025-era session over Streamable HTTP', () => {
  test('a call the client cancels (notifications/cancelled) while it runs: its POST is answered at once, cancelled, and the session goes on', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    const release = holdNotePuts();
    // One the direct path takes, one with _meta (a progress token) that goes through the SDK transport.
    const calls = [
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'note_put', arguments: { id: 'direct', text: 'x' } } },
      { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'note_put', arguments: { id: 'sdk', text: 'x' }, _meta: { progressToken: 'p8' } } },
    ];
    for (const [index, call] of calls.entries()) {
      const answer = post(url, call, session);
      await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(index + 1)); // held inside the tool
      expect((await post(url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: call.id, reason: 'user' } }, session)).status).toBe(202);
      // Before: this POST got no answer (the call still held; released only below).
      const cancelled = (await (await answer).json()) as Answer;
      expect(cancelled).toEqual({ jsonrpc: '2.0', id: call.id, error: { code: requestCancelledCode, message: expect.stringMatching(/cancelled.*read before retrying/) } });
    }
    release();
    // The writes already running were not stopped (the message says so); the session serves on.
    await vi.waitFor(() => expect(serving!.memory.notes.notes.has('sdk') && serving!.memory.notes.notes.has('direct')).toBe(true));
    const ping = await post(url, '{"jsonrpc":"2.0","id":"after","method":"ping"}', session);
    expect((await ping.json()) as Answer).toEqual({ jsonrpc: '2.0', id: 'after', result: {} });
  });

  test('JSON that is not a JSON-RPC message is answered 400 -32600 with its id when readable, and the session goes on', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    const cases: [string, unknown][] = [
      ['{"jsonrpc":"1.0","id":"s","method":"ping"}', 's'],
      ['{"jsonrpc":"2.0","id":1.5,"method":"ping"}', 1.5],
      ['{"jsonrpc":"2.0","id":3,"method":5}', 3],
      ['{"jsonrpc":"2.0","id":4,"method":"tools/call","params":"x"}', 4],
      ['{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', null],
      ['{"jsonrpc":"2.0"}', null],
      ['42', null],
      ['"text"', null],
      ['[]', null],
      ['[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":7}]', null],
    ];
    for (const [body, id] of cases) {
      const answer = await post(url, body, session);
      expect(answer.status, body).toBe(400);
      expect((await answer.json()) as Answer, body).toEqual({ jsonrpc: '2.0', id, error: { code: invalidRequest, message: expect.stringMatching(/^Invalid Request/) } });
    }
    const ping = await post(url, '{"jsonrpc":"2.0","id":"after","method":"ping"}', session);
    expect((await ping.json()) as Answer).toEqual({ jsonrpc: '2.0', id: 'after', result: {} });
  });

  const batchOfTwo = (id: string) => [
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'note_put', arguments: { id, text: 'x' } } },
    { jsonrpc: '2.0', id: 2, method: 'ping' },
  ];

  test('a 2025-03-26 session serves a batch (that revision has them)', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url, {}, '2025-03-26');
    const batch = await post(url, batchOfTwo('batched'), session);
    expect(batch.status).toBe(200);
    expect(((await batch.json()) as Answer[]).map((answer) => [answer.id, answer.error])).toEqual([[1, undefined], [2, undefined]]);
    expect(serving.memory.notes.notes.has('batched')).toBe(true);
  });

  test.each(['2025-06-18', '2025-11-25'])('a %s session refuses a batch (removed in 2025-06-18) with 400 -32600 saying so, runs none of it, and goes on', async (revision) => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url, {}, revision);
    const batch = await post(url, batchOfTwo('batched'), session);
    expect(batch.status).toBe(400);
    expect((await batch.json()) as Answer).toEqual({
      jsonrpc: '2.0', id: null,
      error: { code: invalidRequest, message: expect.stringMatching(/^Invalid Request: JSON-RPC batches are not part of MCP .*removed in 2025-06-18.*its own POST/) },
    });
    expect(serving.memory.notes.notes.has('batched')).toBe(false);
    const ping = await post(url, '{"jsonrpc":"2.0","id":"after","method":"ping"}', session);
    expect((await ping.json()) as Answer).toEqual({ jsonrpc: '2.0', id: 'after', result: {} });
  });
});

describe.each(['older', 'newer'] as const)('lists answered in one page, %s-era client', (era) => {
  test('tools/list and resources/templates/list refuse a cursor (they never give one) with -32602 naming it; resources/list a foreign one', async () => {
    serving = await startNotesHttp();
    const client = await requestOf(era, `${serving.serving.url}/mcp`);
    try {
      for (const method of ['tools/list', 'resources/templates/list', 'resources/list']) {
        const refused = await client.request(method, { cursor: 'not-a-cursor-of-ours' }).then(() => undefined, (error: unknown) => error as { code: number; message: string });
        expect(refused, method).toMatchObject({ code: invalidParams });
        expect(refused!.message, method).toMatch(/cursor/);
      }
      // Without a cursor each still answers.
      expect(await client.request('tools/list', {})).toHaveProperty('tools');
      expect(await client.request('resources/templates/list', {})).toHaveProperty('resourceTemplates');
    } finally {
      await client.close();
    }
  });
});

describe.each(['older', 'newer'] as const)('params of the wrong type, %s-era client', (era) => {
  test('are refused -32602 naming each field and what is wrong with it, in one line, with the {error} data', async () => {
    serving = await startNotesHttp();
    const client = await requestOf(era, `${serving.serving.url}/mcp`);
    try {
      const cases: [string, Record<string, unknown>, string][] = [
        ['resources/read', { uri: 5 }, 'invalid params for resources/read: params.uri: Invalid input: expected string, received number'],
        ['resources/subscribe', {}, 'invalid params for resources/subscribe: params.uri: Invalid input: expected string, received undefined'],
        ['tools/call', { name: 5 }, 'invalid params for tools/call: params.name: Invalid input: expected string, received number'],
      ];
      for (const [method, params, message] of cases) {
        if (era === 'newer' && method === 'resources/subscribe') continue; // not a 2026-07-28 method
        const refused = await client.request(method, params).then(() => undefined, (error: unknown) => error as { code: number; message: string; data?: unknown });
        expect(refused, method).toMatchObject({ code: invalidParams, data: { error: { code: 'invalid_argument', message } } });
        expect(refused!.message, method).toContain(message);
      }
    } finally {
      await client.close();
    }
  });
});

describe('a method an endpoint does not serve', () => {
  test('is answered 405 with Allow naming the ones it does, with a session or without (before: PUT /mcp without one got 400)', async () => {
    serving = await startNotesHttp();
    const base = serving.serving.url;
    const session = await openSession(`${base}/mcp`);
    const cases: [string, string, Record<string, string>, string][] = [
      ['PUT', '/mcp', {}, 'GET, POST, DELETE'],
      ['PATCH', '/mcp', {}, 'GET, POST, DELETE'],
      ['PUT', '/mcp', session, 'GET, POST, DELETE'], // the SDK's session transport answers alike
      ['PUT', '/mcp', { 'mcp-session-id': 'gone' }, 'GET, POST, DELETE'],
      ['PUT', '/sse', {}, 'GET'],
      ['GET', '/messages', {}, 'POST'],
    ];
    for (const [method, path, headers, allow] of cases) {
      const answer = await fetch(`${base}${path}`, {
        method, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: method === 'GET' ? undefined : '{}',
      });
      const what = `${method} ${path} ${JSON.stringify(headers)}`;
      expect(answer.status, what).toBe(405);
      expect(answer.headers.get('allow'), what).toBe(allow);
      expect(((await answer.json()) as Answer).error?.message, what).toMatch(/Method not allowed/i);
    }
  });
});

/**
 * The JSON-RPC error a client got: the 1.x client throws it as is; the 2.x client throws an HTTP
 * answer other than 2xx (a 2026-era lease refused before any server) as SdkHttpError, its body in data.text.
 */
function jsonRpcErrorOf(error: unknown): { code: number; message: string } {
  const e = error as { code: unknown; message: string; data?: { text?: string } };
  if (typeof e.code === 'number') return { code: e.code, message: e.message };
  return (JSON.parse(e.data!.text!) as { error: { code: number; message: string } }).error;
}

describe.each(['older', 'newer'] as const)('a store that is unavailable, %s-era client', (era) => {
  test('resources/read is refused with a server error (-32000, not -32603 Internal error) whose message says unavailable, retry later, as the tools say it', async () => {
    const memory = createNotesMemory();
    let down = false;
    const failed = new StoreFailed('fdatasync failed: EIO', 'fdatasync_failed');
    serving = await startNotesHttp({ memoryFor: async (principal) => (down ? Promise.reject(failed) : singleMemory(memory)(principal)) });
    const client = await requestOf(era, `${serving.serving.url}/mcp`);
    try {
      down = true;
      const tool = (await client.request('tools/call', { name: 'note_get', arguments: { id: 'n' } }).catch((error: unknown) => error)) as { isError?: boolean; content?: { text: string }[]; code?: number; message?: string };
      const read = await client.request('resources/read', { uri: 'memory://notes/n' }).then(() => undefined, jsonRpcErrorOf);
      // The tools' answer: a result (older era) or an error (newer era, refused before any server) naming unavailable with a hint.
      const toolSays = tool.isError === true ? JSON.parse(tool.content![0]!.text).error : { code: tool.code, message: tool.message };
      expect(JSON.stringify(toolSays), JSON.stringify(tool)).toMatch(/unavailable/);
      expect(read, 'resources/read answered').toBeDefined();
      expect(read!.code).toBe(retryLaterCode);
      expect(read!.message).toMatch(/unavailable, retry later: store failed .*fdatasync failed: EIO.*\(retry in a few seconds/);
    } finally {
      down = false;
      await client.close();
    }
  });
});

describe('legacy HTTP+SSE: what is POSTed to /messages', () => {
  test('bad input is answered in JSON-RPC shape, as /mcp answers it (before: plain text), and the session goes on', async () => {
    serving = await startNotesHttp({ bodyBytesMax: 4096 });
    const base = serving.serving.url;
    const streams = new AbortController();
    try {
      const stream = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream' }, signal: streams.signal });
      const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
      let events = '';
      while (!/data: (\S+)\n/.test(events)) events += (await reader.read()).value ?? '';
      const endpoint = `${base}${/data: (\S+)\n/.exec(events)![1]!}`;
      const cases: [string, string, number, Answer][] = [
        ['application/json', '{"a":1}', 400, { jsonrpc: '2.0', id: null, error: { code: invalidRequest, message: expect.stringMatching(/^Invalid Request/) } }],
        ['application/json', '{"jsonrpc":"2.0","id":3,"method":5}', 400, { jsonrpc: '2.0', id: 3, error: { code: invalidRequest, message: expect.stringMatching(/^Invalid Request/) } }],
        ['application/json', '[{"jsonrpc":"2.0","id":1,"method":"ping"}]', 400, { jsonrpc: '2.0', id: null, error: { code: invalidRequest, message: expect.stringMatching(/one JSON-RPC message per POST/) } }],
        ['text/plain', '{"jsonrpc":"2.0","id":1,"method":"ping"}', 415, { jsonrpc: '2.0', id: null, error: { code: -32000, message: expect.stringMatching(/Content-Type must be application\/json/) } }],
        ['application/json', '{bad', 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.stringMatching(/^Parse error/) } }],
      ];
      for (const [type, body, status, answer] of cases) {
        const posted = await fetch(endpoint, { method: 'POST', headers: { 'content-type': type }, body });
        expect(posted.status, body).toBe(status);
        expect(JSON.parse(await posted.text()), body).toEqual(answer);
      }
      const oversized = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(4096) } }) });
      expect(oversized.status).toBe(413);
      expect(await oversized.json()).toMatchObject({ error: { message: expect.stringMatching(/larger than 4096 bytes \(httpBodyBytesMax\)/) } });
      const gone = await fetch(endpoint.replace(/sessionId=[^&]+/, 'sessionId=nope'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
      expect(gone.status).toBe(404);
      expect(await gone.json()).toMatchObject({ error: { code: -32001, message: expect.stringMatching(/open a new stream with GET \/sse/) } });
      // The session goes on: a ping is accepted and answered on the stream.
      expect((await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":"after","method":"ping"}' })).status).toBe(202);
      while (!events.includes('"id":"after"')) events += (await reader.read()).value ?? '';
    } finally {
      streams.abort();
    }
  });
});
