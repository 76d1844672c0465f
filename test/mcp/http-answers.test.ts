/**
 * How a Streamable HTTP call is answered on the wire: a 2025-era session's tools/call comes
 * back as one JSON body (not an SSE stream whose headers and event leave separately), with
 * the same result an SSE answer would carry; both eras are routed by the header-only probe.
 */
import { afterEach, expect, test } from 'vitest';
import { connectNewerHttp } from '../support/mcp-clients.js';
import { startNotesHttp, type NotesHttp } from './fixtures/http-fixture.js';

const olderRevision = '2025-06-18';

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
  });
}

let serving: NotesHttp | undefined;
afterEach(async () => {
  await serving?.serving.close();
  serving = undefined;
});

test('a 2025-era session call is answered with one JSON body carrying the structured result', async () => {
  serving = await startNotesHttp();
  const url = `${serving.serving.url}/mcp`;
  const opened = await post(url, {
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: olderRevision, capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
  });
  expect(opened.status).toBe(200);
  const sessionId = opened.headers.get('mcp-session-id')!;
  expect(sessionId).toBeTruthy();
  await opened.text();
  const session = { 'mcp-session-id': sessionId, 'mcp-protocol-version': olderRevision };
  expect((await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status).toBe(202);

  const answer = await post(url, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'note_put', arguments: { id: 'j', text: 'json' } } }, session);
  expect(answer.status).toBe(200);
  expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await answer.json()) as { id: number; result: { structuredContent: Record<string, unknown> } };
  expect(body.id).toBe(2);
  expect(body.result.structuredContent).toMatchObject({ id: 'j', offset: 0 });
});

test('a 2026-07-28 call, routed by the header-only era probe, reaches the modern handler', async () => {
  serving = await startNotesHttp();
  const client = await connectNewerHttp({ url: `${serving.serving.url}/mcp` });
  try {
    const result = await client.callTool('note_put', { id: 'm', text: 'modern' });
    expect(result.structuredContent).toMatchObject({ id: 'm' });
  } finally {
    await client.close();
  }
});
