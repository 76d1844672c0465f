/**
 * A 2025-era session's GET stream resumes (server/http/session-event-store.ts): an SDK client
 * whose stream dropped hears, once it reconnects, every resource update sent meanwhile, whether it
 * had seen an event before (it sends Last-Event-ID) or not (it sends none). A gap past the bounds
 * closes the session rather than leave it silently incomplete. The client is the 1.x SDK's
 * (the one 2025-era desktop clients run) over real HTTP; its fetch is wrapped only to cut its
 * stream and hold its reconnect, as a network drop would (test/support/stream-cutting-fetch.ts).
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { sessionEventsMax } from '../../server/http/session-event-store.js';
import { bothAccepted, olderRevision, openSession } from '../support/raw-http-session.js';
import { streamCuttingFetch, type StreamCuttingFetch } from '../support/stream-cutting-fetch.js';

let serving: NotesHttp | undefined;
let client: Client | undefined;
afterEach(async () => {
  await client?.close().catch(() => undefined);
  client = undefined;
  await serving?.serving.close();
  serving = undefined;
});

async function connected(url: string, net: StreamCuttingFetch) {
  const updates: string[] = [];
  const errors: string[] = [];
  const sdk = new Client({ name: 'resume-test', version: '0' });
  sdk.setNotificationHandler(ResourceUpdatedNotificationSchema, (note) => void updates.push(note.params.uri));
  sdk.onerror = (error) => void errors.push(error.message);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: net.fetch,
    reconnectionOptions: { initialReconnectionDelay: 20, maxReconnectionDelay: 50, reconnectionDelayGrowFactor: 1, maxRetries: 2 },
  });
  await sdk.connect(transport);
  client = sdk;
  await vi.waitFor(() => expect(net.gets.at(-1)?.status).toBe(200)); // the GET stream is open
  return { sdk, updates, errors };
}

const put = (sdk: Client, id: string, text: string) => sdk.callTool({ name: 'note_put', arguments: { id, text } });

describe('a session GET stream resumes after a drop', () => {
  test('with Last-Event-ID: the update sent while the stream was down arrives after the reconnect', async () => {
    serving = await startNotesHttp();
    const net = streamCuttingFetch();
    const { sdk, updates } = await connected(`${serving.serving.url}/mcp`, net);
    await put(sdk, 'a', 'one');
    await sdk.subscribeResource({ uri: 'memory://notes/a' });
    await put(sdk, 'a', 'two');
    await vi.waitFor(() => expect(updates).toEqual(['memory://notes/a']));
    net.cut();
    await put(sdk, 'a', 'three'); // answered: committed while the client hears nothing
    await put(sdk, 'b', 'unsubscribed');
    net.reconnect();
    await vi.waitFor(() => expect(updates).toEqual(['memory://notes/a', 'memory://notes/a']));
    expect(net.gets.map((g) => g.lastEventId)).toEqual([null, expect.stringMatching(/^[0-9]+$/)]);
    // Live again: the next update comes once, on the resumed stream.
    await put(sdk, 'a', 'four');
    await vi.waitFor(() => expect(updates).toHaveLength(3));
  });

  test('without Last-Event-ID (no event seen yet): the updates sent since the stream was asked for arrive', async () => {
    serving = await startNotesHttp();
    const net = streamCuttingFetch();
    const { sdk, updates } = await connected(`${serving.serving.url}/mcp`, net);
    await put(sdk, 'a', 'one');
    await sdk.subscribeResource({ uri: 'memory://notes/a' });
    net.cut();
    await put(sdk, 'a', 'two');
    await put(sdk, 'a', 'three');
    net.reconnect();
    await vi.waitFor(() => expect(updates).toEqual(['memory://notes/a', 'memory://notes/a']));
    expect(net.gets.map((g) => g.lastEventId)).toEqual([null, null]);
  });

  test(`a gap past sessionEventsMax (${sessionEventsMax}) closes the session: the reconnect gets 404, and so does the next call`, async () => {
    serving = await startNotesHttp();
    const net = streamCuttingFetch();
    const { sdk, updates } = await connected(`${serving.serving.url}/mcp`, net);
    await put(sdk, 'a', 'one');
    await sdk.subscribeResource({ uri: 'memory://notes/a' });
    await put(sdk, 'a', 'seen');
    await vi.waitFor(() => expect(updates).toHaveLength(1));
    net.cut();
    for (let i = 0; i <= sessionEventsMax; i += 64) {
      await Promise.all(Array.from({ length: Math.min(64, sessionEventsMax + 1 - i) }, (_, j) => put(sdk, 'a', `gap ${i + j}`)));
    }
    net.reconnect();
    await vi.waitFor(() => expect(net.gets[1]?.status).toBe(404));
    await expect(put(sdk, 'a', 'after')).rejects.toThrow(/404|Session not found/);
    expect(updates).toHaveLength(1); // nothing partial was replayed
  }, 30_000);

  test('a Last-Event-ID that names no event of the session: 400 saying so; the session goes on', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    for (const lastEventId of ['abc', '99', '-1']) {
      const answer = await fetch(url, { headers: { ...session, accept: bothAccepted, 'mcp-protocol-version': olderRevision, 'last-event-id': lastEventId } });
      expect(answer.status).toBe(400);
      expect(((await answer.json()) as { error: { message: string } }).error.message).toContain('is not an event of this session');
    }
    const stream = await fetch(url, { headers: { ...session, accept: bothAccepted, 'mcp-protocol-version': olderRevision }, signal: AbortSignal.timeout(10_000) });
    expect(stream.status).toBe(200);
    await stream.body?.cancel();
  });
});
