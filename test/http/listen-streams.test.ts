/**
 * Open 2026-era `subscriptions/listen` streams are bounded (streamable-route.ts, tenant-places.ts), per
 * tenant and per process: past a bound a listen is refused 503 with Retry-After naming the
 * bound, and audited as an HTTP refusal in the caller's tenant; a stream that ends gives its
 * place back. Before, a client could open them without end. The real HTTP server in process,
 * real 2.x SDK clients, over the notes fixture.
 */
import { afterEach, expect, test } from 'vitest';
import type { HttpRefusalEvent } from '../../server/http/refusal-audit.js';
import { asTenant, notesMemoriesByTenant, startNotesHttp, tenantHeaderAuthenticate, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { connectNewerHttp, type McpTestClient } from '../support/mcp-clients.js';
import { waitUntil } from '../support/wait-until.js';

let http: NotesHttp | undefined;
const clients: McpTestClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close().catch(() => undefined);
  await http?.serving.close();
  http = undefined;
});

async function clientOf(tenant: string): Promise<McpTestClient> {
  const client = await connectNewerHttp({ url: `${http!.serving.url}/mcp`, headers: asTenant(tenant) });
  clients.push(client);
  return client;
}

/** A raw listen POST, refused before its envelope is read: the status, Retry-After and the error message. */
async function rawListen(tenant: string): Promise<{ status: number; retryAfter: string | null; message?: string }> {
  const response = await fetch(`${http!.serving.url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', ...asTenant(tenant) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscriptions/listen', params: { resourceSubscriptions: ['memory://notes/n1'] } }),
  });
  const retryAfter = response.headers.get('retry-after');
  if (response.status !== 503) {
    await response.body?.cancel();
    return { status: response.status, retryAfter };
  }
  return { status: response.status, retryAfter, message: ((await response.json()) as { error: { message: string } }).error.message };
}

test('listen streams are bounded per tenant and per process: past a bound 503 with Retry-After naming it, audited in the caller\'s tenant; an ended stream gives its place back', async () => {
  const refusals: HttpRefusalEvent[] = [];
  http = await startNotesHttp({ authenticate: tenantHeaderAuthenticate, ...notesMemoriesByTenant(), listenStreamsMax: { total: 3, perTenant: 2 }, onRefusal: (r) => refusals.push(r) });
  const a = await clientOf('a');
  const first = await a.watchResource('memory://notes/n1');
  await a.watchResource('memory://notes/n2');

  const overTenant = await rawListen('a');
  expect(overTenant.status).toBe(503);
  expect(overTenant.retryAfter).toBe('5');
  expect(overTenant.message).toContain('listenStreamsPerTenantMax = 2');
  // The SDK client sees the refusal too, and the other tenants are not held back by a's bound.
  await expect(a.watchResource('memory://notes/n3')).rejects.toThrow(/listenStreamsPerTenantMax = 2/);
  const b = await clientOf('b');
  await b.watchResource('memory://notes/n1');

  const overProcess = await rawListen('c');
  expect(overProcess.status).toBe(503);
  expect(overProcess.message).toContain('listenStreamsMax = 3');

  await waitUntil('the refusals audited', async () => refusals.filter((r) => r.status === 503).length >= 3);
  expect(refusals.filter((r) => r.status === 503).map((r) => [r.principal?.caller.tenant, r.path])).toEqual([['a', '/mcp'], ['a', '/mcp'], ['c', '/mcp']]);

  // The SDK aborts a closed subscription's request: its place is free once the server sees that.
  await first.close();
  const c = await clientOf('c');
  await waitUntil('a\'s ended stream gave its place back', async () => c.watchResource('memory://notes/n1').then(() => true, () => false));
  expect((await c.callTool('note_put', { id: 'n1', text: 'x' })).isError).not.toBe(true);
  expect(await c.nextResourceUpdate()).toBe('memory://notes/n1');
});
