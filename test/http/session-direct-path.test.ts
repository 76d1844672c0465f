/**
 * The direct path of a 2025-era session (server/http/session-transport.ts): one well-formed
 * JSON-RPC request on an initialized session is handed straight to the session's server. Its
 * answer must be byte for byte the SDK transport's answer, every other POST must still get the
 * SDK's own answer, and real SDK clients must see nothing different.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { directRequestOf, SessionTransport } from '../../server/http/session-transport.js';
import { connectNewerHttp, connectOlderHttp } from '../support/mcp-clients.js';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { olderRevision, openSession, post } from '../support/raw-http-session.js';

let serving: NotesHttp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await serving?.serving.close();
  serving = undefined;
});

interface WireAnswer {
  readonly status: number;
  readonly contentType: string | null;
  readonly sessionId: string | null;
  readonly body: string;
}

async function wire(answer: Response): Promise<WireAnswer> {
  return {
    status: answer.status,
    contentType: answer.headers.get('content-type'),
    sessionId: answer.headers.get('mcp-session-id'),
    body: await answer.text(),
  };
}

describe('which bodies the direct path takes', () => {
  test('one request the SDK schema accepts as it is', () => {
    expect(directRequestOf({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', arguments: {} } })).toBeDefined();
    expect(directRequestOf({ jsonrpc: '2.0', id: 'a', method: 'tools/list' })).toBeDefined();
    // A client's onprogress: the call's progress rides its answer (direct-exchange.ts).
    expect(directRequestOf({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'x', _meta: { progressToken: 7 } } })).toBeDefined();
    expect(directRequestOf({ jsonrpc: '2.0', id: 3, method: 'resources/read', params: { uri: 'memory://x', _meta: { progressToken: 'p' } } })).toBeDefined();
    // Beside the token, keys of the client's own (the SDK's meta schema passes them on unchecked).
    expect(directRequestOf({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'x', _meta: { progressToken: 8, 'com.example/trace': { id: 'abc' } } } })).toBeDefined();
  });

  test('everything else is left to the SDK transport', () => {
    const leftToSdk: unknown[] = [
      [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }], // a batch
      { jsonrpc: '2.0', method: 'notifications/initialized' }, // no id: a notification
      { jsonrpc: '2.0', id: 1, result: {} }, // a posted response
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} },
      { jsonrpc: '1.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 1.5, method: 'tools/list' },
      { jsonrpc: '2.0', id: null, method: 'tools/list' },
      { jsonrpc: '2.0', id: 1, method: 7 },
      { jsonrpc: '2.0', id: 1, method: 'tools/list', extra: true }, // the SDK's schema is strict
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: [] },
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: null },
      { jsonrpc: '2.0', id: 2 ** 60, method: 'tools/list' }, // not a safe integer: the SDK's schema refuses it
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: {} } },
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: null } },
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { progressToken: 1.5 } } },
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { progressToken: 2 ** 60 } } },
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { progressToken: null } } },
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { other: true } } }, // no progress token
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { progressToken: 1, 'io.modelcontextprotocol/related-task': { taskId: 't' } } } }, // MCP's own keys: the SDK's
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: [] } },
      null, 'text', 42,
    ];
    for (const body of leftToSdk) expect(directRequestOf(body), JSON.stringify(body)).toBeUndefined();
  });
});

describe('a 2025-era session over Streamable HTTP', () => {
  test('a call on the direct path is answered exactly as the SDK transport answers it', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    const call = (id: number, params: Record<string, unknown>) => post(url, { jsonrpc: '2.0', id, method: 'tools/call', params }, session);
    const taken = vi.spyOn(SessionTransport.prototype, 'serveDirect');
    // `_meta` in params sends the same call through the SDK transport (its meta schema checks it).
    const direct = await wire(await call(5, { name: 'note_get', arguments: { id: 'none' } }));
    const viaSdk = await wire(await call(5, { name: 'note_get', arguments: { id: 'none' }, _meta: {} }));
    expect(taken.mock.results.map((r) => r.value)).toEqual([true, false]);
    expect(direct).toEqual(viaSdk);
    expect(direct.status).toBe(200);
    expect(direct.contentType).toBe('application/json');
    expect(direct.sessionId).toBe(session['mcp-session-id']);
    expect(JSON.parse(direct.body)).toMatchObject({ jsonrpc: '2.0', id: 5, result: { isError: true } });
  });

  test('a tools/call goes to the session server\'s tool caller and is answered as through the SDK', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    const taken = vi.spyOn(SessionTransport.prototype, 'serveDirect');
    const call = (id: number, params: Record<string, unknown>) => post(url, { jsonrpc: '2.0', id, method: 'tools/call', params }, session);
    // The first direct call shows the session's transport; count the calls its tool caller takes.
    await wire(await call(1, { name: 'note_get', arguments: { id: 'warm' } }));
    const transport = taken.mock.contexts[0] as SessionTransport;
    const sessionCaller = transport.directToolCaller!()!;
    expect(sessionCaller).toBeTypeOf('function');
    let toolCalls = 0;
    transport.directToolCaller = () => async (name, args) => {
      toolCalls++;
      return sessionCaller(name, args);
    };
    const putDirect = await wire(await call(2, { name: 'note_put', arguments: { id: 'n1', text: 'one' } }));
    expect(toolCalls).toBe(1);
    expect(JSON.parse(putDirect.body)).toMatchObject({ jsonrpc: '2.0', id: 2, result: { structuredContent: { id: 'n1', version: 1 } } });
    // The same reads, direct and through the SDK (`_meta` sends a call there): the same bytes.
    for (const args of [{ id: 'n1' }, { id: 'none' }, { id: '' }]) {
      const direct = await wire(await call(3, { name: 'note_get', arguments: args }));
      const viaSdk = await wire(await call(3, { name: 'note_get', arguments: args, _meta: {} }));
      expect(direct, JSON.stringify(args)).toEqual(viaSdk);
    }
    expect(toolCalls).toBe(4);
    const got = JSON.parse((await wire(await call(4, { name: 'note_get', arguments: { id: 'n1' } }))).body) as { result: { structuredContent: unknown } };
    expect(got.result.structuredContent).toMatchObject({ id: 'n1', text: 'one', version: 1 });
  });

  test('a string id and an unknown method are answered as the SDK answers them', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    const listed = JSON.parse(await (await post(url, { jsonrpc: '2.0', id: 'list-1', method: 'tools/list' }, session)).text()) as {
      id: unknown; result: { tools: unknown[] };
    };
    expect(listed.id).toBe('list-1');
    expect(listed.result.tools.length).toBeGreaterThan(0);
    const unknownDirect = await wire(await post(url, { jsonrpc: '2.0', id: 9, method: 'no/such' }, session));
    const unknownViaSdk = await wire(await post(url, { jsonrpc: '2.0', id: 9, method: 'no/such', params: { _meta: {} } }, session));
    expect(unknownDirect).toEqual(unknownViaSdk);
    expect(JSON.parse(unknownDirect.body)).toMatchObject({ id: 9, error: { code: -32601 } });
  });

  test('refusals and the other message kinds keep the SDK transport answers', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    const request = { jsonrpc: '2.0', id: 1, method: 'tools/list' };

    const notAcceptable = await post(url, request, { ...session, accept: 'application/json' });
    expect(notAcceptable.status).toBe(406);
    expect(((await notAcceptable.json()) as { error: { message: string } }).error.message).toMatch(/Not Acceptable/);

    const badVersion = await post(url, request, { ...session, 'mcp-protocol-version': '1999-01-01' });
    expect(badVersion.status).toBe(400);
    expect(((await badVersion.json()) as { error: { message: string } }).error.message).toMatch(/Unsupported protocol version/);

    const malformed = await post(url, { ...request, jsonrpc: '1.0' }, session);
    expect(malformed.status).toBe(400);
    // JSON but no JSON-RPC message: Invalid Request, with its id (the SDK transport said -32700, Parse error).
    expect(await malformed.json()).toMatchObject({ id: 1, error: { code: -32600 } });

    // A batch on this 2025-11-25 session: refused, batches were removed in 2025-06-18 (json-rpc-conformance.test.ts).
    const batch = await post(url, [request, { ...request, id: 2 }], session);
    expect(batch.status).toBe(400);
    expect(await batch.json()).toMatchObject({ id: null, error: { code: -32600 } });

    expect((await post(url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } }, session)).status).toBe(202);

    const reinitialize = await post(url, {
      jsonrpc: '2.0', id: 3, method: 'initialize',
      params: { protocolVersion: olderRevision, capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    }, session);
    expect(reinitialize.status).toBe(400);
  });

  test('concurrent calls of one SDK 1.x client each get their own answer', async () => {
    serving = await startNotesHttp();
    const client = await connectOlderHttp({ url: `${serving.serving.url}/mcp` });
    try {
      const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
      const results = await Promise.all(ids.map((id) => client.callTool('note_put', { id, text: `text of ${id}` })));
      expect(results.map((r) => r.structuredContent?.['id'])).toEqual(ids);
      const read = await Promise.all(ids.map((id) => client.callTool('note_get', { id })));
      expect(read.map((r) => (r.structuredContent as { text?: string } | undefined)?.text)).toEqual(ids.map((id) => `text of ${id}`));
    } finally {
      await client.close();
    }
  });

  test('a closed session refuses the next call with 404', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    const closed = await fetch(url, { method: 'DELETE', headers: session });
    expect(closed.status).toBe(200);
    const after = await post(url, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, session);
    expect(after.status).toBe(404);
  });

  test('an SDK 2.x client pinned to 2026-07-28 is served beside the sessions', async () => {
    serving = await startNotesHttp();
    const older = await connectOlderHttp({ url: `${serving.serving.url}/mcp` });
    const newer = await connectNewerHttp({ url: `${serving.serving.url}/mcp` });
    try {
      await older.callTool('note_put', { id: 'shared', text: 'from the older era' });
      const seen = await newer.callTool('note_get', { id: 'shared' });
      expect(seen.structuredContent).toMatchObject({ id: 'shared', text: 'from the older era' });
    } finally {
      await newer.close();
      await older.close();
    }
  });
});
