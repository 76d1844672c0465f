/**
 * 2025-era sessions over a real TenantRegistry (server/tenants/registry.ts) with one slot: a
 * session holds no store between its calls, so another tenant's call evicts its store and the
 * session goes on (its next call reopens the store); a subscription hears each commit once across
 * the eviction; the idle sweep and the per-tenant bound still close sessions. A 2026-era
 * subscriptions/listen stream holds no store at all: it goes on through the eviction too.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import type { CommitsOf, MemoryFor } from '../../server/http/seams.js';
import { TenantRegistry, type TenantRegistryEvent } from '../../server/tenants/registry.js';
import { TenantCommits } from '../../server/tenants/tenant-commits.js';
import { segmentFileName } from '../../storage/log/segment.js';
import { connectNewerHttp, connectOlderHttp } from '../support/mcp-clients.js';
import { openSession, post } from '../support/raw-http-session.js';
import { asTenant, startNotesHttp, tenantHeader, tenantHeaderAuthenticate, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { createNotesMemory, type NotesMemory } from '../mcp/fixtures/notes.js';

interface Registered {
  readonly memoryFor: MemoryFor;
  readonly commitsOf: CommitsOf;
  readonly events: TenantRegistryEvent[];
  /** Resolves when `tenant`'s store has closed `count` times in all. */
  closed(tenant: string, count?: number): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A registry of one slot over notes memories (a new instance per open, as a real store), wired as the process wires it. */
async function oneSlotRegistry(): Promise<Registered> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-session-eviction-'));
  const commits = new TenantCommits();
  const events: TenantRegistryEvent[] = [];
  const waiters: Array<() => void> = [];
  const registry = new TenantRegistry<NotesMemory>({
    dataDir,
    openTenantsMax: 1,
    slotWaitMs: 5_000,
    open: async (tenant, dir) => {
      // A store on disk (an empty first segment), so the reopen does not find it vanished.
      await mkdir(path.join(dir, 'log'), { recursive: true });
      await writeFile(path.join(dir, 'log', segmentFileName(0)), '');
      const memory = createNotesMemory(tenant);
      commits.attach(tenant, memory.store);
      return memory;
    },
    observe: (event) => {
      events.push(event);
      for (const wake of waiters.splice(0)) wake();
    },
  });
  cleanups.push(async () => {
    await registry.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const closedCount = (tenant: string) => events.filter((e) => e.kind === 'closed' && e.tenant === tenant).length;
  return {
    memoryFor: async (principal) => {
      const lease = await registry.acquire(principal.caller.tenant);
      return { memory: lease.store, release: () => lease.release() };
    },
    commitsOf: (tenant, listener) => commits.listen(tenant, listener),
    events,
    closed: async (tenant, count = 1) => {
      while (closedCount(tenant) < count) await new Promise<void>((wake) => waiters.push(wake));
    },
  };
}

async function started(registered: Registered, overrides: Parameters<typeof startNotesHttp>[0] = {}): Promise<NotesHttp> {
  const http = await startNotesHttp({ authenticate: tenantHeaderAuthenticate, memoryFor: registered.memoryFor, commitsOf: registered.commitsOf, ...overrides });
  cleanups.push(() => http.serving.close());
  return http;
}

const put = (id: number, note: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'note_put', arguments: { id: note, text: 'x' } } });

async function callOk(url: string, body: unknown, session: Record<string, string>): Promise<void> {
  const answer = await post(url, body, session);
  expect(answer.status, `session ${session['mcp-session-id']} of tenant ${session[tenantHeader]}`).toBe(200);
  expect((await answer.json() as { result?: { isError?: boolean } }).result?.isError).toBeFalsy();
}

/** A session of ta, after a call of tb evicted ta's store and the session's next call reopened it. */
async function sessionThroughEviction(url: string, registered: Registered): Promise<Record<string, string>> {
  const ta = await openSession(url, asTenant('ta'));
  await callOk(url, put(1, 'a1'), ta);
  await callOk(url, put(2, 'b1'), await openSession(url, asTenant('tb')));
  await registered.closed('ta');
  await callOk(url, put(3, 'a2'), ta);
  return ta;
}

test("a session goes on after another tenant's call evicted its store; its next call reopens the store", async () => {
  const registered = await oneSlotRegistry();
  const { serving } = await started(registered);
  await sessionThroughEviction(`${serving.url}/mcp`, registered);
  expect(registered.events.filter((e) => e.kind === 'opened' && e.tenant === 'ta')).toHaveLength(2);
});

test.each([
  ['a 2025-era subscriber (resources/subscribe on its session)', connectOlderHttp],
  ['a 2026-era subscriptions/listen stream, which holds no store,', connectNewerHttp],
] as const)('%s hears exactly one update per write across its store being evicted and reopened', async (_name, connect) => {
  const registered = await oneSlotRegistry();
  const { serving } = await started(registered);
  const url = `${serving.url}/mcp`;
  const watcher = await connect({ url, headers: asTenant('ta') });
  cleanups.push(() => watcher.close());
  await watcher.watchResource('memory://notes/watched');
  await watcher.watchResource('memory://notes/marker');
  const writer = await openSession(url, asTenant('ta'));
  await callOk(url, put(1, 'watched'), writer); // heard before the eviction
  expect(await watcher.nextResourceUpdate()).toBe('memory://notes/watched');
  const other = await openSession(url, asTenant('tb'));
  await callOk(url, put(2, 'watched'), other); // another tenant's note of the same id: not heard
  await registered.closed('ta');
  await callOk(url, put(3, 'watched'), writer); // reopens ta's store
  await callOk(url, put(4, 'marker'), writer);
  // Sorted: a listen stream per address, so the two may arrive in either order.
  expect([await watcher.nextResourceUpdate(), await watcher.nextResourceUpdate()].sort()).toEqual(['memory://notes/marker', 'memory://notes/watched']);
  expect(watcher.pendingResourceUpdates()).toEqual([]);
});

test('a session that outlived its store being evicted is still closed by the idle sweep', async () => {
  const registered = await oneSlotRegistry();
  let stoppedListening!: () => void;
  const listenerGone = new Promise<void>((resolve) => (stoppedListening = resolve));
  const commitsOf: CommitsOf = (tenant, listener) => {
    const stop = registered.commitsOf(tenant, listener);
    return () => {
      stop();
      if (tenant === 'ta') stoppedListening();
    };
  };
  const { serving } = await started(registered, { commitsOf, sessionIdleMs: 1_000 });
  const url = `${serving.url}/mcp`;
  const ta = await sessionThroughEviction(url, registered);
  await listenerGone; // the sweep closed the session's server
  expect((await post(url, put(4, 'a3'), ta)).status).toBe(404);
});

test("a session that outlived its store being evicted still makes room at its tenant's bound", async () => {
  const registered = await oneSlotRegistry();
  const { serving } = await started(registered, { sessionsMax: { total: 8, perTenant: 1 } });
  const url = `${serving.url}/mcp`;
  const first = await sessionThroughEviction(url, registered);
  const second = await openSession(url, asTenant('ta'));
  expect((await post(url, put(4, 'a3'), first)).status).toBe(404);
  await callOk(url, put(5, 'a4'), second);
});
