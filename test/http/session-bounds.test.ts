/**
 * The bounds on 2025-era sessions (server/http/session-table.ts) on a real server: at a bound the
 * longest-idle session makes room (its client gets 404 and may initialize again), a session with
 * a call running is never closed for room, an open event stream holds no slot, and one tenant
 * cannot take every slot nor push out another tenant's few.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { asTenant, notesMemoriesByTenant as memoriesByTenant, startNotesHttp, tenantHeaderAuthenticate as tenantAuthenticate, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { createNotesMemory, holdNotePuts, notePut, type NotesMemory } from '../mcp/fixtures/notes.js';
import { openSession, post } from '../support/raw-http-session.js';

let serving: NotesHttp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await serving?.serving.close();
  serving = undefined;
});

const ping = (id: number) => ({ jsonrpc: '2.0', id, method: 'ping' });
const as = asTenant;

describe('session bounds', () => {
  test('at the tenant bound the longest-idle session of that tenant makes room; the others go on', async () => {
    serving = await startNotesHttp({ authenticate: tenantAuthenticate, ...memoriesByTenant(), sessionsMax: { total: 8, perTenant: 2 } });
    const url = `${serving.serving.url}/mcp`;
    const first = await openSession(url, as('a'));
    const second = await openSession(url, as('a'));
    expect((await post(url, ping(1), second)).status).toBe(200); // second is now the more recently seen
    const third = await openSession(url, as('a'));
    expect((await post(url, ping(2), first)).status).toBe(404);
    expect((await post(url, ping(3), second)).status).toBe(200);
    expect((await post(url, ping(4), third)).status).toBe(200);
  });

  test('sessions with a request in flight are never closed for room: 503 with Retry-After naming the bound; another tenant still gets in', async () => {
    serving = await startNotesHttp({ authenticate: tenantAuthenticate, ...memoriesByTenant(), sessionsMax: { total: 8, perTenant: 2 } });
    const url = `${serving.serving.url}/mcp`;
    const busy = [await openSession(url, as('a')), await openSession(url, as('a'))];
    const release = holdNotePuts();
    const inFlight = busy.map((session, i) => post(url, { jsonrpc: '2.0', id: 10 + i, method: 'tools/call', params: { name: 'note_put', arguments: { id: `n${i}`, text: 'x' } } }, session));
    await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(2));
    const refused = await post(url, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }, as('a'));
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('legacySessionsPerTenantMax = 2');
    const other = await openSession(url, as('b'));
    expect((await post(url, ping(5), other)).status).toBe(200);
    release();
    for (const answer of await Promise.all(inFlight)) expect(answer.status).toBe(200);
  });

  test('an open event stream does not hold a slot: at a bound the idle session without one goes first, then the listener whose last call is oldest (its stream ends)', async () => {
    serving = await startNotesHttp({ authenticate: tenantAuthenticate, ...memoriesByTenant(), sessionsMax: { total: 8, perTenant: 2 } });
    const url = `${serving.serving.url}/mcp`;
    const listen = async (session: Record<string, string>) => {
      const stream = await fetch(url, { headers: { ...session, accept: 'text/event-stream' }, signal: AbortSignal.timeout(20_000) });
      expect(stream.status).toBe(200);
      return { ended: stream.text() }; // resolves when the server ends the stream
    };
    const listener = await openSession(url, as('a'));
    const listenerStream = await listen(listener);
    const idle = await openSession(url, as('a')); // opened after the listener, and no stream
    const third = await openSession(url, as('a'));
    expect((await post(url, ping(8), idle)).status).toBe(404);
    const thirdStream = await listen(third);
    expect((await post(url, ping(9), listener)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await post(url, ping(10), third)).status).toBe(200); // the listener's last call is now the older
    const fourth = await openSession(url, as('a'));
    await listenerStream.ended;
    expect((await post(url, ping(11), listener)).status).toBe(404);
    for (const session of [third, fourth]) expect((await post(url, ping(12), session)).status).toBe(200);
    await serving.serving.close();
    await thirdStream.ended;
  });

  test('at the process bound the tenant holding the most sessions makes room (its longest-idle): another tenant\'s few stay', async () => {
    serving = await startNotesHttp({ authenticate: tenantAuthenticate, ...memoriesByTenant(), sessionsMax: { total: 4, perTenant: 2 } });
    const url = `${serving.serving.url}/mcp`;
    const idleB = await openSession(url, as('b'));
    const a1 = await openSession(url, as('a'));
    const a2 = await openSession(url, as('a'));
    const d = await openSession(url, as('d'));
    const c = await openSession(url, as('c'));
    expect((await post(url, ping(6), a1)).status).toBe(404);
    for (const session of [idleB, a2, d, c]) expect((await post(url, ping(7), session)).status).toBe(200);
    // Tenants holding one each: the longest-idle of them goes (idleB was pinged first above).
    const e = await openSession(url, as('e'));
    expect((await post(url, ping(8), idleB)).status).toBe(404);
    for (const session of [a2, d, c, e]) expect((await post(url, ping(9), session)).status).toBe(200);
  });
});
