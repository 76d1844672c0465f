/**
 * A 2026-era request (no session) holds its tenant's store for as long as its work runs, not as
 * long as its HTTP exchange: a client that drops the POST while its tool call is running must
 * not let the registry close the store under that call (a store closed mid-commit fails a write
 * the client may already count on after a retry).
 */
import { afterEach, expect, test, vi } from 'vitest';
import type { MemoryFor } from '../../server/http/seams.js';
import { singleMemory } from '../../server/http/seams.js';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { createNotesMemory, holdNotePuts, notePut } from '../mcp/fixtures/notes.js';
import { newerRevision } from '../support/mcp-clients.js';

let serving: NotesHttp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await serving?.serving.close();
  serving = undefined;
});

/** singleMemory, counting the leases taken and not yet released. */
function countedLeases(): { memoryFor: MemoryFor; held(): number; memory: ReturnType<typeof createNotesMemory> } {
  const memory = createNotesMemory();
  const inner = singleMemory(memory);
  let held = 0;
  return {
    memory,
    held: () => held,
    memoryFor: async (principal) => {
      const lease = await inner(principal);
      held += 1;
      let released = false;
      return {
        memory: lease.memory,
        release: () => {
          expect(released, 'a lease released twice').toBe(false);
          released = true;
          held -= 1;
          lease.release();
        },
      };
    },
  };
}

/** A note_put as a 2026-era client POSTs it: no session, the per-request envelope in _meta. */
function notePutRequest(id: number, noteId: string, signal?: AbortSignal): Promise<Response> {
  const meta = { 'io.modelcontextprotocol/protocolVersion': newerRevision, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '0' }, 'io.modelcontextprotocol/clientCapabilities': {} };
  return fetch(`${serving!.serving.url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': newerRevision, 'mcp-method': 'tools/call', 'mcp-name': 'note_put' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'note_put', arguments: { id: noteId, text: 'x' }, _meta: meta } }),
    signal: signal ?? AbortSignal.timeout(20_000),
  });
}

test('a 2026-era tool call whose client dropped the POST keeps its lease until the call is over', async () => {
  const leases = countedLeases();
  serving = await startNotesHttp({ memoryFor: leases.memoryFor });
  const release = holdNotePuts();
  const dropped = new AbortController();
  const answer = notePutRequest(1, 'held', dropped.signal).catch((error: unknown) => error);
  await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(1)); // inside the tool
  dropped.abort();
  expect(await answer).toBeInstanceOf(Error);
  // The server has seen the client go (its response closed: the request's own lease is released)...
  await vi.waitFor(() => expect(leases.held()).toBe(1));
  await new Promise((resolve) => setTimeout(resolve, 200));
  // ...and the running call still holds the store (before: none held, the store free to close).
  expect(leases.held()).toBe(1);
  release();
  await vi.waitFor(() => expect(leases.memory.notes.notes.has('held')).toBe(true));
  await vi.waitFor(() => expect(leases.held()).toBe(0));
});

test('a 2026-era request answered normally releases every lease it took', async () => {
  const leases = countedLeases();
  serving = await startNotesHttp({ memoryFor: leases.memoryFor });
  for (let i = 0; i < 3; i++) {
    const answered = await notePutRequest(i, `n${i}`);
    expect(answered.status, await answered.clone().text()).toBe(200);
    await answered.text();
  }
  await vi.waitFor(() => expect(leases.held()).toBe(0));
  expect(leases.memory.notes.notes.size).toBe(3);
});
