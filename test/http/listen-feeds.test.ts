/**
 * A tenant's commits are worked out once for all its subscriptions/listen streams (listen-feeds.ts)
 * and reach only the streams listening to the changed URIs. Before, every open stream computed
 * each commit's URIs again and tested each one: a tenant's thousand streams made each of its
 * commits cost a thousand times the work, on the thread all tenants share. The real HTTP server
 * in process over the notes fixture, a real 2.x SDK client.
 */
import { afterEach, expect, test } from 'vitest';
import type { ResourceCatalog } from '../../resources/catalog.js';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { silentLogger } from '../../server/log.js';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { notesCatalog, notesTools } from '../mcp/fixtures/notes.js';
import { connectNewerHttp, type McpTestClient, type Watch } from '../support/mcp-clients.js';
import { waitUntil } from '../support/wait-until.js';

let http: NotesHttp | undefined;
let client: McpTestClient | undefined;
afterEach(async () => {
  await client?.close().catch(() => undefined);
  await http?.serving.close();
  http = undefined;
});

test('each commit\'s URIs are worked out once for all of a tenant\'s listen streams, and reach only the streams listening to them', async () => {
  let computed = 0;
  const catalog: ResourceCatalog = { ...notesCatalog, changedUris: (tx) => (computed++, notesCatalog.changedUris(tx)) };
  http = await startNotesHttp({ surface: { tools: notesTools, catalog, log: silentLogger() } });
  client = await connectNewerHttp({ url: `${http.serving.url}/mcp` });
  const streams = 16;
  const watches: Watch[] = [];
  for (let i = 0; i < streams; i++) watches.push(await client.watchResource(`memory://notes/n${i}`));
  const caller = localPrincipal().caller;

  await http.memory.notes.put('n3', 'three', caller);
  expect(computed, `one commit's URIs worked out once, not once per stream (${streams} streams)`).toBe(1);
  expect(await client.nextResourceUpdate()).toBe('memory://notes/n3');
  await http.memory.notes.put('n7', 'seven', caller);
  await http.memory.notes.put('not-watched', 'x', caller);
  expect(computed).toBe(3);
  expect(await client.nextResourceUpdate()).toBe('memory://notes/n7');
  expect(client.pendingResourceUpdates(), 'only the listening stream hears an update, once').toEqual([]);

  // Once every stream has ended, the tenant's commits are not worked out at all.
  for (const watch of watches) await watch.close();
  await waitUntil('the ended streams stop hearing commits', async () => {
    const before = computed;
    await http!.memory.notes.put('n3', 'again', caller);
    return computed === before;
  });
});
