/**
 * The legacy HTTP+SSE stream names the endpoint its client must POST to. Express serves the
 * stream at `/sse` in any case and with a trailing slash, so that endpoint must be the messages
 * route for each spelling: for `/SSE` and `/sse/` it named the stream's own path, which answers
 * no POST, and the client could never send a message. The real HTTP server in process, a real
 * 1.x SDK client over SSE.
 */
import { afterEach, expect, test } from 'vitest';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { connectOlderSse } from '../support/mcp-clients.js';

let http: NotesHttp | undefined;
afterEach(async () => {
  await http?.serving.close();
  http = undefined;
});

test.each(['/sse', '/SSE', '/sse/', '/Sse/', '/t/local/sse/', '/t/local/SSE'])('a client of the stream at %s posts to the messages route and is served', async (path) => {
  http = await startNotesHttp();
  const client = await connectOlderSse({ url: `${http.serving.url}${path}` });
  try {
    expect((await client.listTools()).map((t) => t.name)).toContain('note_put');
  } finally {
    await client.close();
  }
});
