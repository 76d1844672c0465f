/**
 * Live change delivery against the committed history, on the real built server (Keycloak-shaped
 * tokens from the test issuer, two tenants): several writers (real MCP clients of both eras over
 * Streamable HTTP) change objects they own; WebSocket subscribers with different predicates drop
 * their connections at random points and resume with `after`; 2025-era `resources/subscribe`
 * sessions and 2026-era `subscriptions/listen` streams watch single objects. One store is open at
 * a time (IOBOXX_MAX_OPEN_TENANTS=1), so the two tenants evict each other's store all along. The model is the
 * writers' own calls ordered by the offsets their results carry: each subscriber must have seen
 * every transaction its predicate sees, once, in offset order, exactly as the model says, and
 * nothing of the other tenant.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client as NewerClient, StreamableHTTPClientTransport as NewerHttpTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectNewerHttp, connectOlderHttp, newerRevision, toolErrorOf, type McpTestClient, type ToolResult } from '../support/mcp-clients.js';
import { oidcEnvForIssuer, startOidcIssuer, type OidcIssuerProcess } from '../support/oidc-issuer.js';
import { TestClient, type Message } from '../ws/ws-test-client.js';
import { startHttpServer, type ServerProcess } from './server-process.js';

let idp: OidcIssuerProcess;
let dataDir: string;
let server: ServerProcess;
const tokens: Record<string, string> = {};
const roles = ['memory-writer'];

beforeAll(async () => {
  idp = await startOidcIssuer();
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-live-model-'));
  // One open store for two busy tenants: every turn of the other tenant evicts this one's store,
  // closing its WebSocket subscribers (1013) while its sessions and listen streams go on.
  server = await startHttpServer({ ...oidcEnvForIssuer(idp), IOBOXX_DATA_DIR: dataDir, IOBOXX_MAX_OPEN_TENANTS: '1' });
  for (const org of ['org-a', 'org-b']) tokens[org] = await idp.token({ organizations: [org], realmRoles: roles, subject: `writer-${org}`, ttlS: 600 });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await idp?.stop();
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
});

const bearer = (org: string) => ({ authorization: `Bearer ${tokens[org]!}` });

interface ObjectRow { id: string; type: string; attributes: Record<string, unknown>; version: number }
/** One committed write: the object as it was before and after, at the offset its result named. */
interface Committed { offset: number; id: string; before: ObjectRow | undefined; after: ObjectRow | undefined }

/** A seeded PRNG, so a failure can be rerun with the same choices. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A call retried while the server is busy (a store slot taken by the other tenant): its
 * idempotency key makes a retry of a call that did apply answer the first result, applied once.
 */
async function callRetried(client: McpTestClient, name: string, args: Record<string, unknown>): Promise<ToolResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      const result = await client.callTool(name, args);
      const code = toolErrorOf(result)?.code;
      if ((code !== 'busy' && code !== 'unavailable') || attempt >= 50) return result;
    } catch (error) {
      if (attempt >= 50) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 20 * Math.min(attempt + 1, 10)));
  }
}

/** A writer owning its ids: its own model of them is exact, whatever the other writers do. */
async function runWriter(client: McpTestClient, prefix: string, ops: number, random: () => number, into: Committed[]): Promise<void> {
  const mine = new Map<string, ObjectRow>();
  const version = new Map<string, number>();
  for (let i = 0; i < ops; i++) {
    const id = `${prefix}-${Math.floor(random() * 5)}`;
    const before = mine.get(id);
    const choice = random();
    let name: string;
    let args: Record<string, unknown>;
    let after: ObjectRow | undefined;
    const nextVersion = (version.get(id) ?? 0) + 1;
    if (before === undefined || choice < 0.35) {
      const type = random() < 0.5 ? 'task' : 'note';
      const attributes = { n: i, prio: Math.floor(random() * 10) };
      name = 'object_put';
      args = { id, type, attributes };
      after = { id, type, attributes, version: nextVersion };
    } else if (choice < 0.8) {
      const prio = Math.floor(random() * 10);
      name = 'object_patch';
      args = { id, set: { prio } };
      after = { ...before, attributes: { ...before.attributes, prio }, version: nextVersion };
    } else {
      name = 'object_delete';
      args = { id };
      after = undefined;
    }
    const result = await callRetried(client, name, { ...args, idempotency_key: `${prefix}-${i}` });
    expect(result.isError, `${name} ${JSON.stringify(args)}: ${JSON.stringify(result.content)}`).not.toBe(true);
    const out = result.structuredContent as { offset: number; version: number };
    expect(out.version).toBe(nextVersion);
    version.set(id, nextVersion);
    if (after === undefined) mine.delete(id);
    else mine.set(id, after);
    into.push({ offset: out.offset, id, before, after });
  }
}

type Where = Record<string, unknown> | undefined;

/** The predicate a subscriber's `where` states, evaluated on the model's rows. */
function matches(where: Where, row: ObjectRow): boolean {
  if (where === undefined) return true;
  for (const [column, condition] of Object.entries(where)) {
    const value = (row as unknown as Record<string, unknown>)[column];
    if (typeof condition !== 'object' || condition === null) {
      if (value !== condition) return false;
      continue;
    }
    const c = condition as { in?: unknown[]; gte?: number; lt?: number };
    if (c.in !== undefined && !c.in.includes(value)) return false;
    if (c.gte !== undefined && !((value as number) >= c.gte)) return false;
    if (c.lt !== undefined && !((value as number) < c.lt)) return false;
  }
  return true;
}

/** `kind:id:version` of each change the predicate sees in the transaction at one offset. */
function expectedChanges(where: Where, changes: readonly Committed[]): string[] {
  const seen: string[] = [];
  for (const c of changes) {
    const was = c.before !== undefined && matches(where, c.before);
    const is = c.after !== undefined && matches(where, c.after);
    if (was && is) seen.push(`updated:${c.id}:${c.after!.version}`);
    else if (is) seen.push(`inserted:${c.id}:${c.after!.version}`);
    else if (was) seen.push(`deleted:${c.id}:${c.before!.version}`);
  }
  return seen.sort();
}

function receivedChanges(message: Message): string[] {
  const seen: string[] = [];
  for (const q of message.queries as Array<Record<string, Array<{ id: string; version: number }> | string>>) {
    for (const kind of ['inserted', 'updated', 'deleted'] as const) {
      for (const row of (q[kind] as Array<{ id: string; version: number }> | undefined) ?? []) seen.push(`${kind}:${row.id}:${row.version}`);
    }
  }
  return seen.sort();
}

/**
 * A WebSocket subscriber that drops its connection every few messages and resumes with the last
 * offset it applied. It keeps every tx message it applied (offset -> changes) and the offsets it
 * was reset at.
 */
class Subscriber {
  readonly applied = new Map<number, string[]>();
  readonly duplicates: number[] = [];
  readonly outOfOrder: string[] = [];
  readonly foreign: string[] = [];
  readonly resets: number[] = [];
  readonly closes: number[] = [];
  firstOffset: number | undefined;
  lastOffset = 0;
  private client: TestClient | undefined;
  private stopped = false;
  private reconnects = 0;
  refusals = 0;
  done: Promise<void> = Promise.resolve();

  constructor(readonly name: string, readonly org: string, readonly where: Where, private readonly random: () => number, private readonly foreignPrefix: string) {}

  start(): Promise<void> {
    let ready!: () => void;
    const readyPromise = new Promise<void>((resolve) => (ready = resolve));
    this.done = this.loop(ready);
    return readyPromise;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.client?.close();
    await this.done;
  }

  private async loop(ready: () => void): Promise<void> {
    while (!this.stopped) {
      let client: TestClient;
      try {
        client = await TestClient.connect(`${server.url.replace('http', 'ws')}/ws`, { token: tokens[this.org]! });
        this.client = client;
        // stop() came while this upgrade waited for the store: it closed the connection before
        // this one, so this one is closed here (else it would wait for messages no one sends).
        if (this.stopped) {
          client.ws.terminate();
          break;
        }
        await client.nextOfType('hello');
      } catch {
        // Refused (503: the store went to the other tenant as this one opened), as after a 1013: a pause, then again.
        this.refusals++;
        await new Promise((resolve) => setTimeout(resolve, 100 + this.random() * 300));
        continue;
      }
      const query = { id: 'q', table: 'objects', ...(this.where ? { where: this.where } : {}) };
      client.send({ type: 'subscribe', queries: [query], ...(this.firstOffset !== undefined ? { after: this.lastOffset } : {}) });
      // Drop the connection after a random number of messages (or never, on some connections).
      const messagesBeforeDrop = this.random() < 0.25 ? Infinity : 1 + Math.floor(this.random() * 12);
      let taken = 0;
      for (;;) {
        let m: Message;
        try {
          m = await client.next(() => true, 60_000);
        } catch {
          // Closed (by us, at stop or a drop; by the server), or silent for a minute: then it is
          // cut here, so the wait for its close below ends.
          if (client.ws.readyState !== client.ws.CLOSED) client.ws.terminate();
          break;
        }
        if (m.type === 'subscribed') {
          if (m.resumed !== true) {
            if (this.firstOffset !== undefined) this.resets.push(m.offset as number);
            this.firstOffset ??= m.offset as number;
            this.lastOffset = m.offset as number;
            for (const row of m.queries[0].rows as ObjectRow[]) if (row.id.startsWith(this.foreignPrefix)) this.foreign.push(row.id);
          } else if (m.offset !== this.lastOffset) {
            this.outOfOrder.push(`resumed at ${m.offset as number}, last applied ${this.lastOffset}`);
          }
          ready();
        } else if (m.type === 'tx') {
          const offset = m.offset as number;
          if (this.applied.has(offset)) this.duplicates.push(offset);
          if (offset <= this.lastOffset) this.outOfOrder.push(`${offset} after ${this.lastOffset}`);
          const changes = receivedChanges(m);
          for (const c of changes) if (c.split(':')[1]!.startsWith(this.foreignPrefix)) this.foreign.push(c);
          this.applied.set(offset, changes);
          this.lastOffset = Math.max(this.lastOffset, offset);
        } else if (m.type === 'error') {
          this.outOfOrder.push(`error ${JSON.stringify(m)}`);
        }
        if (++taken >= messagesBeforeDrop && this.reconnects < 40 && !this.stopped) {
          this.reconnects++;
          // Half the drops are abrupt (no close frame), half clean.
          if (this.random() < 0.5) client.ws.terminate();
          else client.close();
        }
      }
      const closed = await client.closed;
      this.closes.push(closed.code);
      // 1013 says retry later (the store went to another tenant): a client that reconnects at once
      // takes it back at once, and the two tenants' subscribers evict each other without end.
      if (closed.code === 1013) await new Promise((resolve) => setTimeout(resolve, 100 + this.random() * 300));
    }
  }

  /** Waits until it has applied `offset` (or a later one). */
  async reach(offset: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (this.lastOffset < offset) {
      if (Date.now() > deadline) {
        const last = this.client?.received.slice(-3).map((m) => JSON.stringify(m).slice(0, 200));
        throw new Error(`${this.name}: stuck at ${this.lastOffset}, waiting for ${offset}; connection state ${this.client?.ws.readyState}, closes ${this.closes.join(',')}, last messages ${last?.join(' ')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

test('every subscriber sees each durable transaction its predicate sees, once, in offset order, and nothing of another tenant', async () => {
  const random = prng(Number(process.env.IOBOXX_MODEL_SEED ?? 20261201));
  const committed: Committed[] = [];
  const writersA = await Promise.all([
    connectOlderHttp({ url: `${server.url}/mcp`, headers: bearer('org-a') }),
    connectNewerHttp({ url: `${server.url}/mcp`, headers: bearer('org-a') }),
    connectNewerHttp({ url: `${server.url}/mcp`, headers: bearer('org-a') }),
  ]);
  const writerB = await connectNewerHttp({ url: `${server.url}/mcp`, headers: bearer('org-b') });
  const watchedIds = ['a0-1', 'a1-2', 'a2-3'];
  const watchedUris = watchedIds.map((id) => `memory://objects/${id}`);

  // 2025-era resources/subscribe on a session; 2026-era subscriptions/listen on one stream.
  const older = await connectOlderHttp({ url: `${server.url}/mcp`, headers: bearer('org-a') });
  for (const uri of watchedUris) await older.watchResource(uri);
  const newerUpdates: string[] = [];
  const newer = new NewerClient({ name: 'model-listener', version: '0' }, { versionNegotiation: { mode: { pin: newerRevision } } });
  newer.setNotificationHandler('notifications/resources/updated', (note) => void newerUpdates.push(note.params.uri));
  await newer.connect(new NewerHttpTransport(new URL(`${server.url}/mcp`), { requestInit: { headers: bearer('org-a') } }));
  const listening = await newer.listen({ resourceSubscriptions: watchedUris });

  const subscribers = [
    new Subscriber('tasks', 'org-a', { type: 'task' }, prng(1), 'b'),
    new Subscriber('some ids', 'org-a', { id: { in: ['a0-0', 'a0-1', 'a1-1', 'a2-4', 'b0-1'] } }, prng(2), 'b'),
    new Subscriber('later versions', 'org-a', { version: { gte: 3 } }, prng(3), 'b'),
    new Subscriber('high notes', 'org-a', { type: 'note', version: { gte: 2, lt: 1000 } }, prng(4), 'b'),
    new Subscriber('everything', 'org-a', undefined, prng(5), 'b'),
    new Subscriber('tenant b', 'org-b', undefined, prng(6), 'a'),
  ];
  await Promise.all(subscribers.map((s) => s.start()));

  const committedB: Committed[] = [];
  await Promise.all([
    ...writersA.map((w, i) => runWriter(w, `a${i}`, 80, prng(100 + i), committed)),
    runWriter(writerB, 'b0', 80, prng(200), committedB),
  ]);
  const byOffset = new Map<number, Committed[]>();
  for (const c of committed) byOffset.set(c.offset, [...(byOffset.get(c.offset) ?? []), c]);
  const endA = Math.max(...committed.map((c) => c.offset));
  const endB = Math.max(...committedB.map((c) => c.offset));

  for (const s of subscribers) {
    const mine = s.org === 'org-a' ? committed : committedB;
    const lastSeen = Math.max(0, ...mine.filter((c) => expectedChanges(s.where, [c]).length > 0).map((c) => c.offset));
    await s.reach(Math.max(lastSeen, 1));
  }
  await Promise.all(subscribers.map((s) => s.stop()));

  for (const s of subscribers) {
    const history = s.org === 'org-a' ? byOffset : new Map(committedB.map((c) => [c.offset, [c]]));
    const end = s.org === 'org-a' ? endA : endB;
    expect(s.foreign, `${s.name}: rows of another tenant`).toEqual([]);
    expect(s.duplicates, `${s.name}: transactions received twice`).toEqual([]);
    expect(s.outOfOrder, `${s.name}: out of order`).toEqual([]);
    // Every message equals the model's changes at its offset.
    for (const [offset, changes] of s.applied) expect(changes, `${s.name} at ${offset}`).toEqual(expectedChanges(s.where, history.get(offset) ?? []));
    // Every transaction the predicate sees after the first result was received, except in a reset's gap.
    const missing: number[] = [];
    for (const [offset, changes] of history) {
      if (offset <= s.firstOffset! || offset > end || expectedChanges(s.where, changes).length === 0) continue;
      if (s.applied.has(offset)) continue;
      const coveredByReset = s.resets.some((r) => offset <= r);
      if (!coveredByReset) missing.push(offset);
    }
    expect(missing, `${s.name}: transactions never received (resets at ${s.resets.join(',')})`).toEqual([]);
  }

  // Not a vacuous run: every subscriber was cut and resumed many times, and received transactions.
  for (const s of subscribers) {
    expect(s.closes.filter((code) => code === 1013).length, `${s.name}: evictions`).toBeGreaterThan(3);
    expect(s.applied.size, `${s.name}: transactions`).toBeGreaterThan(10);
  }
  // The resource subscribers: one update per transaction that changed a watched object.
  const sentinel = 'a0-1';
  const sentinelCount = committed.filter((c) => c.id === sentinel).length;
  const countsOf = (updates: readonly string[]) => Object.fromEntries(watchedUris.map((uri) => [uri, updates.filter((u) => u === uri).length]));
  const expected = Object.fromEntries(watchedUris.map((uri, i) => [uri, committed.filter((c) => c.id === watchedIds[i]).length]));
  expect(sentinelCount).toBeGreaterThan(0);
  const olderUpdates: string[] = [];
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    olderUpdates.push(...older.pendingResourceUpdates().slice(olderUpdates.length));
    const done = (updates: string[]) => watchedUris.every((uri) => countsOf(updates)[uri]! >= expected[uri]!);
    if (done(olderUpdates) && done(newerUpdates)) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(countsOf(olderUpdates), 'resources/subscribe updates').toEqual(expected);
  expect(countsOf(newerUpdates), 'subscriptions/listen updates').toEqual(expected);

  await listening.close();
  await Promise.all([...writersA, writerB, older].map((c) => c.close()));
  await newer.close();
}, 180_000);
