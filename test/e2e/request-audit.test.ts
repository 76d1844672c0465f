/**
 * Every MCP request leaves an access-log row (DESIGN invariant 7), not only tool calls and
 * resource requests: initialize, ping, tools/list, resources/templates/list, server/discover,
 * a method nobody serves, a tools/call the SDK refuses before any handler of ours runs. The
 * real built server in local mode (which has the audit capability): raw JSON-RPC over
 * Streamable HTTP, and real SDK clients of both eras over HTTP and stdio.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectNewerHttp, connectNewerStdio, connectOlderHttp, connectOlderStdio, type McpTestClient } from '../support/mcp-clients.js';
import { waitUntil } from '../support/wait-until.js';
import { baseEnv, repoRoot, serverBin, startHttpServer, type ServerProcess } from './server-process.js';

type Row = { seq: number; action: string; target: string; outcome: string };

let dataDir: string;
let server: ServerProcess;
/** Reads the access log for every test; its own rows (its initialize, its calls) come before each test's and are left out. */
let reader: McpTestClient;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-request-audit-'));
  server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  reader = await connectOlderHttp({ url: `${server.url}/mcp` });
  await rowsAfter(0, (rows) => rows.some((row) => row.action === 'initialize'));
}, 90_000);
afterAll(async () => {
  await reader?.close();
  await server?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** One raw JSON-RPC POST on /mcp; the answer's JSON body (the session answers with JSON, not a stream). */
async function post(body: unknown, sessionId?: string): Promise<{ status: number; sessionId: string | null; json: unknown }> {
  const response = await fetch(`${server.url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(sessionId !== undefined && { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' }),
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  const json = text === '' ? undefined : JSON.parse(text.startsWith('event:') || text.startsWith('data:') ? text.slice(text.indexOf('{')) : text);
  return { status: response.status, sessionId: response.headers.get('mcp-session-id'), json };
}

/** Rows newer than `afterSeq`, oldest first (the reader's own calls left out), once `enough` holds. */
async function rowsAfter(afterSeq: number, enough: (rows: Row[]) => boolean): Promise<Row[]> {
  let rows: Row[] = [];
  await waitUntil('the requests in the access log', async () => {
    const listed = await reader.callTool('access_log_list', { limit: 200 });
    rows = (listed.structuredContent as { entries: Row[] }).entries
      .filter((row) => row.seq > afterSeq && !(row.action === 'tools/call' && row.target === 'access_log_list'))
      .reverse();
    return enough(rows);
  });
  return rows;
}

async function lastSeq(): Promise<number> {
  const listed = await reader.callTool('access_log_list', { limit: 1 });
  return (listed.structuredContent as { entries: Row[] }).entries[0]?.seq ?? 0;
}

test('initialize, ping, an unknown method, a tools/call the SDK refuses and a request for a gone session each leave a row', async () => {
  const before = await lastSeq();
  const initialize = await post({
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });
  expect(initialize.status).toBe(200);
  const session = initialize.sessionId!;
  expect(typeof session).toBe('string');
  expect((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status).toBe(202);
  expect((await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, session)).json).toMatchObject({ id: 2, result: {} });
  expect((await post({ jsonrpc: '2.0', id: 3, method: 'no/such/method' }, session)).json).toMatchObject({ id: 3, error: { code: -32601 } });
  // No `name`: the SDK's request schema refuses it before our tools/call handler runs.
  expect((await post({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { arguments: {} } }, session)).json).toMatchObject({ id: 4, error: { code: -32602 } });
  // A tools/call our handler answers is reported once, by the handler (with its tool name).
  expect((await post({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'no_such_tool', arguments: {} } }, session)).json).toMatchObject({ id: 5, result: { isError: true } });

  // Params the SDK's schema refuses: the client's mistake, -32602, not an internal error.
  expect((await post({ jsonrpc: '2.0', id: 7, method: 'resources/read', params: {} }, session)).json).toMatchObject({ id: 7, error: { code: -32602 } });
  // Refused before any MCP server saw it (the session is gone): a row of the caller's tenant too.
  expect((await post({ jsonrpc: '2.0', id: 6, method: 'ping' }, 'no-such-session')).status).toBe(404);

  const rows = await rowsAfter(before, (r) => r.some((row) => row.action === 'http'));
  expect(rows.map((row) => [row.action, row.target, row.outcome])).toEqual([
    ['initialize', '-', 'ok'],
    ['ping', '-', 'ok'],
    ['no/such/method', '-', 'method_not_found'],
    ['tools/call', '-', 'invalid_argument'],
    ['tools/call', 'no_such_tool', 'not_found'],
    ['resources/read', '-', 'invalid_argument'],
    ['http', 'POST /mcp', '404'],
  ]);
}, 120_000);

test('a session\'s event stream (GET /mcp, GET /sse) and its end (DELETE /mcp) each leave a row, the streams\' while they are open', async () => {
  const before = await lastSeq();
  const initialize = await post({
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });
  const session = initialize.sessionId!;
  expect((await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status).toBe(202);
  const sessionHeaders = { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
  const streams = new AbortController();
  try {
    const stream = await fetch(`${server.url}/mcp`, { headers: { accept: 'text/event-stream', ...sessionHeaders }, signal: streams.signal });
    expect(stream.status).toBe(200);
    const sse = await fetch(`${server.url}/sse`, { headers: { accept: 'text/event-stream' }, signal: streams.signal });
    expect(sse.status).toBe(200);
    // Both streams are still open: their rows must not wait for their end.
    const opened = await rowsAfter(before, (r) => r.filter((row) => row.action === 'http').length >= 2);
    expect(opened.map((row) => [row.action, row.target, row.outcome])).toEqual([
      ['initialize', '-', 'ok'],
      ['http', 'GET /mcp', '200'],
      ['http', 'GET /sse', '200'],
    ]);
    expect((await fetch(`${server.url}/mcp`, { method: 'DELETE', headers: sessionHeaders })).status).toBe(200);
    // The session is gone: a second DELETE is refused, and recorded as such.
    expect((await fetch(`${server.url}/mcp`, { method: 'DELETE', headers: sessionHeaders })).status).toBe(404);
    const ended = await rowsAfter(before, (r) => r.filter((row) => row.action === 'http').length >= 4);
    expect(ended.slice(3).map((row) => [row.action, row.target, row.outcome])).toEqual([
      ['http', 'DELETE /mcp', '200'],
      ['http', 'DELETE /mcp', '404'],
    ]);
  } finally {
    streams.abort();
  }
}, 120_000);

test('real clients of both eras over HTTP: their listing requests are audited, nothing twice', async () => {
  const before = await lastSeq();
  const clients: McpTestClient[] = [];
  try {
    const older = await connectOlderHttp({ url: `${server.url}/mcp` });
    clients.push(older);
    await older.listTools();
    await older.listResourceTemplates();
    const newer = await connectNewerHttp({ url: `${server.url}/mcp` });
    clients.push(newer);
    await newer.listTools();
    const watch = await newer.watchResource('memory://objects/watched');
    await watch.close();
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
  const rows = await rowsAfter(before, (r) => r.filter((row) => row.action === 'tools/list').length >= 2 && r.some((row) => row.action === 'http'));
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(`${row.action} ${row.outcome}`, (counts.get(`${row.action} ${row.outcome}`) ?? 0) + 1);
  expect(Object.fromEntries(counts)).toEqual({
    'initialize ok': 1,
    'tools/list ok': 2,
    'resources/templates/list ok': 1,
    'server/discover ok': 1,
    'subscriptions/listen ok': 1,
    'http 200': 1, // the older client's session stream (GET /mcp)
  });
}, 120_000);

test.each([
  ['older', ['initialize', 'tools/list', 'resources/subscribe', 'resources/unsubscribe']],
  ['newer', ['server/discover', 'tools/list', 'subscriptions/listen']],
] as const)('over stdio, a %s-era client: its requests are audited once each', async (era, expected) => {
  const stdioDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-request-audit-stdio-'));
  const env = { ...baseEnv(), IOBOXX_DATA_DIR: stdioDir };
  const spec = { command: process.execPath, args: [serverBin, 'serve', '--stdio'], env, cwd: repoRoot, stderr: 'ignore' as const };
  const client = await (era === 'older' ? connectOlderStdio : connectNewerStdio)(spec);
  try {
    await client.listTools();
    const watch = await client.watchResource('memory://objects/watched');
    await watch.close();
    let rows: Row[] = [];
    await waitUntil('the listing in the access log', async () => {
      const listed = await client.callTool('access_log_list', { limit: 50 });
      rows = (listed.structuredContent as { entries: Row[] }).entries.reverse();
      return rows.filter((row) => row.action !== 'tools/call').length >= expected.length;
    });
    expect(rows.filter((row) => row.action !== 'tools/call').map((row) => [row.action, row.outcome])).toEqual(expected.map((action) => [action, 'ok']));
  } finally {
    await client.close();
    await rm(stdioDir, { recursive: true, force: true });
  }
}, 120_000);
