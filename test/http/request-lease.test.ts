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
import { post2026 } from '../support/raw-http-session.js';

let serving: NotesHttp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await serving?.serving.close();
  serving = undefined;
});

/** singleMemory, counting the leases taken and not yet released. */
function countedLeases(): { memoryFor: MemoryFor; held(): number; taken(): number; memory: ReturnType<typeof createNotesMemory> } {
  const memory = createNotesMemory();
  const inner = singleMemory(memory);
  let held = 0;
  let taken = 0;
  return {
    memory,
    held: () => held,
    taken: () => taken,
    memoryFor: async (principal) => {
      const lease = await inner(principal);
      held += 1;
      taken += 1;
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

/** A note_put as a 2026-era client POSTs it. */
function notePutRequest(id: number, noteId: string, signal?: AbortSignal): Promise<Response> {
  return post2026(`${serving!.serving.url}/mcp`, id, 'tools/call', { name: 'note_put', arguments: { id: noteId, text: 'x' } }, { signal });
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

test('requests that read no memory take no lease, and a call that asks for progress takes only its own (its store opens inside the call, heard as progress)', async () => {
  const leases = countedLeases();
  serving = await startNotesHttp({ memoryFor: leases.memoryFor });
  for (const method of ['server/discover', 'tools/list', 'resources/templates/list']) {
    const answered = await post2026(`${serving.serving.url}/mcp`, 1, method, {});
    expect(answered.status, `${method}: ${await answered.clone().text()}`).toBe(200);
    expect(await answered.text(), method).toContain('"result"');
  }
  expect(leases.taken()).toBe(0);

  const plain = await notePutRequest(2, 'plain');
  expect(plain.status, await plain.clone().text()).toBe(200);
  await plain.text();
  await vi.waitFor(() => expect(leases.held()).toBe(0));
  expect(leases.taken()).toBe(2); // the request's own, then the call's

  const withProgress = await post2026(`${serving.serving.url}/mcp`, 3, 'tools/call', { name: 'note_put', arguments: { id: 'p', text: 'x' } }, { meta: { progressToken: 'p3' } });
  expect(withProgress.status, await withProgress.clone().text()).toBe(200);
  await withProgress.text();
  await vi.waitFor(() => expect(leases.held()).toBe(0));
  expect(leases.taken()).toBe(3);
  expect(leases.memory.notes.notes.has('p')).toBe(true);
});
