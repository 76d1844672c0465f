/**
 * End to end: the real HTTP server (serveHttpProcess: the real memory module, tenant registry
 * and TenantCommits) with 2 store slots, driven by real SDK clients with bearer tokens from the
 * test issuer. More tenants than slots keep evicting stores; 2025-era sessions (sessionful
 * Streamable HTTP and HTTP+SSE) hold no store between calls, so they go on through every
 * eviction, and a subscription hears each write once across one. A 2026-era subscriptions/listen
 * stream holds no store at all: it streams on through an eviction and hears each write once.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectNewerHttp, connectOlderHttp, connectOlderSse, toolErrorOf, type McpTestClient } from '../support/mcp-clients.js';
import type { OidcIssuerProcess } from '../support/oidc-issuer.js';
import { startTokenHttpProcess, type TokenHttpProcess } from '../support/token-http-process.js';

const openTenantsMax = 2;

/** The registry's events as the process logs them (`tenant store <kind>`, with tenant and why). */
interface StoreEvent {
  readonly msg: string;
  readonly tenant?: string;
  readonly why?: string;
}

let running: TokenHttpProcess | undefined;
let idp: OidcIssuerProcess;
let base: string;
const events: StoreEvent[] = [];

beforeAll(async () => {
  const log = pino({ level: 'info' }, {
    write: (line: string) => {
      const event = JSON.parse(line) as StoreEvent;
      if (!event.msg.startsWith('tenant store ')) return;
      events.push(event);
    },
  });
  running = await startTokenHttpProcess({ openTenantsMax, log });
  ({ idp, base } = running);
}, 60_000);

afterAll(async () => {
  await running?.stop();
});

const count = (msg: string, tenant?: string, why?: string) =>
  events.filter((e) => e.msg === msg && (tenant === undefined || e.tenant === tenant) && (why === undefined || e.why === why)).length;

/** Other tenants' most evicting a store before `tenant`'s goes: every slot turned over several times. */
const evictingTenantsMax = 5 * openTenantsMax;

/**
 * Other tenants write, one after another, until `tenant`'s store has closed. Which store a new
 * tenant evicts is the registry's choice (the least recently used one past its residency, which
 * is four times its open's duration): a store that opened slowly may outlast the one opened after
 * it, so two tenants for two slots do not always evict this one.
 */
async function evictStoreOf(tenant: string): Promise<void> {
  const closedBefore = count('tenant store closed', tenant);
  for (let i = 0; count('tenant store closed', tenant) <= closedBefore; i++) {
    if (i === evictingTenantsMax) throw new Error(`the store of ${tenant} was not closed after ${i} other tenants wrote`);
    const other = `${tenant}-evict-${i}`;
    await putOk(await kept(connectOlderHttp({ url: `${base}/mcp`, headers: await bearerFor(other) })), 'watched', `${other} takes a slot`);
  }
}

async function bearerFor(tenant: string): Promise<Record<string, string>> {
  const token = await idp.token({ organizations: [tenant], realmRoles: ['memory-writer'], subject: `user-${tenant}` });
  return { Authorization: `Bearer ${token}` };
}

const clients: McpTestClient[] = [];
afterAll(async () => {
  await Promise.allSettled(clients.map((client) => client.close()));
});

async function kept(connecting: Promise<McpTestClient>): Promise<McpTestClient> {
  const client = await connecting;
  clients.push(client);
  return client;
}

async function putOk(client: McpTestClient, id: string, what: string): Promise<void> {
  const result = await client.callTool('object_put', { id, type: 'note', attributes: { what } });
  expect(toolErrorOf(result), what).toBeUndefined();
}

test(`5 tenants through ${openTenantsMax} slots, each with a Streamable HTTP and an SSE session: 200 calls round-robin all succeed while stores are evicted`, async () => {
  const tenants = Array.from({ length: 5 }, (_, index) => `rr-${index}`);
  const sessions: Array<{ tenant: string; kind: string; client: McpTestClient }> = [];
  for (const kind of ['streamable-http', 'sse'] as const) {
    for (const tenant of tenants) {
      const headers = await bearerFor(tenant);
      const client = kind === 'sse'
        ? await kept(connectOlderSse({ url: `${base}/sse`, headers }))
        : await kept(connectOlderHttp({ url: `${base}/mcp`, headers }));
      sessions.push({ tenant, kind, client });
    }
  }
  const evictedBefore = count('tenant store closing', undefined, 'evicted');
  // Consecutive calls go to different tenants: with 2 slots nearly every call evicts a store.
  for (let call = 0; call < 200; call += 1) {
    const { tenant, kind, client } = sessions[call % sessions.length]!;
    const what = `call ${call}: ${kind} session of ${tenant}`;
    let answer;
    try {
      answer = await client.callTool('object_put', { id: `obj-${call}`, type: 'note', attributes: { call } });
    } catch (error) {
      throw new Error(`${what} failed: ${(error as Error).message}`);
    }
    expect(toolErrorOf(answer), what).toBeUndefined();
  }
  expect(count('tenant store closing', undefined, 'evicted') - evictedBefore).toBeGreaterThanOrEqual(100);
}, 180_000);

test.each([
  ['watch-t', 'a 2025-era subscriber (resources/subscribe on its session)', connectOlderHttp],
  ['listen-t', 'a 2026-era subscriptions/listen stream, which holds no store,', connectNewerHttp],
] as const)('%s: %s hears exactly one update per write across its store being evicted and reopened', async (tenant, _name, connect) => {
  const headers = await bearerFor(tenant);
  const watcher = await kept(connect({ url: `${base}/mcp`, headers }));
  const writer = await kept(connectOlderHttp({ url: `${base}/mcp`, headers }));
  await watcher.watchResource('memory://objects/watched');
  await watcher.watchResource('memory://objects/marker');
  await putOk(writer, 'watched', 'before the eviction');
  expect(await watcher.nextResourceUpdate()).toBe('memory://objects/watched');

  // Other tenants take both slots: the watched tenant's store is evicted and closes.
  await evictStoreOf(tenant);

  await putOk(writer, 'watched', 'after the eviction: reopens the store');
  await putOk(writer, 'marker', 'the last write');
  // Sorted: a listen stream per address, so the two may arrive in either order.
  expect([await watcher.nextResourceUpdate(), await watcher.nextResourceUpdate()].sort()).toEqual(['memory://objects/marker', 'memory://objects/watched']);
  expect(watcher.pendingResourceUpdates()).toEqual([]);
}, 60_000);
