/**
 * A JSON-RPC batch on a 2025-03-26 session (the one revision with batches): each request in it
 * is a call under the tenant's bounds, as if posted alone. Its POST is admitted as one call
 * before its body is read; the rest are admitted at once when the batch is parsed, or the
 * batch is refused whole (429 while there is no room, 400 past inFlightMax, which no wait
 * would admit) with nothing of it run. Admitted as one, a batch ran any number of calls at once.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { holdNotePuts, notePut } from '../mcp/fixtures/notes.js';
import { openSession, post } from '../support/raw-http-session.js';
import { callAdmission } from '../../server/ops/request-admission.js';
import { TenantLoadGuard } from '../../server/ops/load-protection.js';

let serving: NotesHttp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await serving?.serving.close();
  serving = undefined;
});

const limits = { inFlightMax: 2, aloneInFlightMax: 2, queuedMax: 0, ratePerSecond: 100_000, burst: 100_000 };
const put = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'note_put', arguments: { id: `n${id}`, text: 'x' } } });
type Answer = { id: number | null; result?: unknown; error?: { code: number; message: string; data?: { code: string } } };

test('the requests of a batch hold a slot each while they run; a batch with no room is refused 429, one past inFlightMax 400, nothing of either run', async () => {
  const guard = new TenantLoadGuard(limits);
  serving = await startNotesHttp({ admission: callAdmission({ guard, refusalHoldMs: 0 }) });
  const url = `${serving.serving.url}/mcp`;
  const session = await openSession(url, {}, '2025-03-26');
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));

  // Past inFlightMax: no wait would admit it.
  const tooLarge = await post(url, [put(6), put(7), put(8)], session);
  expect(tooLarge.status).toBe(400);
  expect(await tooLarge.json() as Answer).toMatchObject({
    id: null, error: { code: -32600, message: expect.stringMatching(/batch of 3 requests .* 2 calls a tenant may run at once \(IOBOXX_TENANT_INFLIGHT_MAX\)/), data: { code: 'limit_exceeded' } },
  });
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));

  const release = holdNotePuts();
  const batch = post(url, [put(1), put(2), { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'x', progress: 1 } }], session);
  await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(2));
  expect(guard.stats('local').inFlight).toBe(2); // one slot per request; the notification takes none

  const alone = await post(url, put(3), session);
  expect(alone.status).toBe(429);
  const busyBatch = await post(url, [put(4), put(5)], session);
  expect(busyBatch.status).toBe(429);

  expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(2);

  release();
  const answered = await batch;
  expect(answered.status).toBe(200);
  expect((await answered.json() as Answer[]).map((a) => [a.id, a.error])).toEqual([[1, undefined], [2, undefined]]);
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));
  for (const id of [3, 4, 5, 6, 7, 8]) expect(serving.memory.notes.notes.has(`n${id}`)).toBe(false);

  // One call running: a batch of two gets its POST's slot but no room for its second request.
  vi.restoreAllMocks(); // a second hold over the first would call itself
  const holdOne = holdNotePuts();
  const single = post(url, put(11), session);
  await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(1));
  const noRoom = await post(url, [put(12), put(13)], session);
  expect(noRoom.status).toBe(429);
  expect(await noRoom.json() as Answer).toMatchObject({ id: null, error: { message: expect.stringContaining('no room for 1 more of a batch'), data: { code: 'busy' } } });
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(1)); // the refused POST's own slot is back
  holdOne();
  expect((await single).status).toBe(200);
  for (const id of [12, 13]) expect(serving.memory.notes.notes.has(`n${id}`)).toBe(false);
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));

  // With the slots back, a batch of two runs.
  const next = await post(url, [put(9), put(10)], session);
  expect(next.status).toBe(200);
  expect(serving.memory.notes.notes.has('n10')).toBe(true);
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));
});
