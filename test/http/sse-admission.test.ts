/**
 * A call posted to a legacy HTTP+SSE session (POST /messages) is answered 202 at once and its
 * answer goes on the session's stream: its admission slot (the tenant's inFlightMax) is held
 * until that answer is written, as a Streamable HTTP call's is until its response. Released with
 * the 202, a client ran any number of calls at once, past inFlightMax and the queue.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { holdNotePuts, notePut } from '../mcp/fixtures/notes.js';
import { callAdmission } from '../../server/ops/request-admission.js';
import { TenantLoadGuard } from '../../server/ops/load-protection.js';

let serving: NotesHttp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await serving?.serving.close();
  serving = undefined;
});

const limits = { inFlightMax: 1, aloneInFlightMax: 1, queuedMax: 0, ratePerSecond: 100_000, burst: 100_000 };
const put = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'note_put', arguments: { id: `n${id}`, text: 'x' } } });

test('calls posted to /messages run no more at once than inFlightMax; the slot comes back with the answer on the stream', async () => {
  const guard = new TenantLoadGuard(limits);
  serving = await startNotesHttp({ admission: callAdmission({ guard, refusalHoldMs: 0 }) });
  const base = serving.serving.url;
  const stream = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream' }, signal: AbortSignal.timeout(20_000) });
  const reader = stream.body!.getReader();
  let text = '';
  const readUntil = async (needle: string) => {
    while (!text.includes(needle)) text += new TextDecoder().decode((await reader.read()).value);
  };
  await readUntil('sessionId=');
  const endpoint = /data: (\S+)/.exec(text)![1]!;
  const send = (body: unknown) => fetch(`${base}${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect((await send({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } })).status).toBe(202);
  await readUntil('"id":0');
  expect((await send({ jsonrpc: '2.0', method: 'notifications/initialized' })).status).toBe(202);

  const release = holdNotePuts();
  expect((await send(put(1))).status).toBe(202);
  await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(1));
  for (let i = 2; i <= 5; i++) expect((await send(put(i))).status).toBe(429);
  expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(1);
  expect(guard.stats('local').inFlight).toBe(1);
  release();
  await readUntil('"id":1');
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));
  expect((await send(put(6))).status).toBe(202);
  await readUntil('"id":6');
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));
  await reader.cancel();
});

test('a call whose stream closes before its answer gives its slot back', async () => {
  const guard = new TenantLoadGuard(limits);
  serving = await startNotesHttp({ admission: callAdmission({ guard, refusalHoldMs: 0 }) });
  const base = serving.serving.url;
  const controller = new AbortController();
  const stream = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  const reader = stream.body!.getReader();
  let text = '';
  while (!text.includes('sessionId=')) text += new TextDecoder().decode((await reader.read()).value);
  const endpoint = /data: (\S+)/.exec(text)![1]!;
  const send = (body: unknown) => fetch(`${base}${endpoint}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect((await send({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } })).status).toBe(202);
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));
  const release = holdNotePuts();
  expect((await send(put(1))).status).toBe(202);
  await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(1));
  expect(guard.stats('local').inFlight).toBe(1);
  controller.abort();
  await vi.waitFor(() => expect(guard.stats('local').inFlight).toBe(0));
  release();
});
