/**
 * A quiet HTTP+SSE stream carries a comment every sseKeepAliveMs, so a proxy's read timeout does
 * not cut it (for this transport a cut ends the session); a real 1.x SDK client ignores the
 * comments and goes on being served. The real HTTP server in process, keep-alive shortened.
 */
import { afterEach, expect, test } from 'vitest';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { connectOlderSse } from '../support/mcp-clients.js';

let http: NotesHttp | undefined;
afterEach(async () => {
  await http?.serving.close();
  http = undefined;
});

test('a quiet /sse stream carries keep-alive comments, and its client is served between them', async () => {
  http = await startNotesHttp({ sseKeepAliveMs: 50 });
  const stream = await fetch(`${http.serving.url}/sse`, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.timeout(10_000) });
  expect(stream.status).toBe(200);
  const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while ((text.match(/^: keep-alive$/gm) ?? []).length < 3) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended after: ${text}`);
    text += value;
  }
  expect(text).toMatch(/^event: endpoint\ndata: \/messages\?sessionId=/); // the endpoint event first, as before
  await reader.cancel();

  const client = await connectOlderSse({ url: `${http.serving.url}/sse` });
  try {
    await new Promise((resolve) => setTimeout(resolve, 200)); // a few comments on its stream
    expect((await client.callTool('note_put', { id: 'a', text: 'kept' })).isError).not.toBe(true);
  } finally {
    await client.close();
  }
});
