/**
 * Live row subscriptions over a real WebSocket: real `ws` clients against a real
 * http.Server on 127.0.0.1, the real Store and the real memory module (local mode). Writes
 * go through the memory tools, whose acknowledgement carries the commit offset.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { fixedPrincipal, singleMemory } from '../../server/http/seams.js';
import { attachWebSocket, type WebSocketServing, type WsEvent } from '../../server/ws/attach-websocket.js';
import { wsClose } from '../../server/ws/close-codes.js';
import { memoryExposedTables } from '../../server/ws/exposed-tables.js';
import { memoryTools, openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { TestClient, type Message } from './ws-test-client.js';
import { OpsMetrics } from '../../server/ops/metrics.js';
import { observeWebSocket } from '../../server/ws/ws-observer.js';

const principal = localPrincipal('acme');
let dir: string;
let memory: TenantMemory;
let server: Server;
let serving: WebSocketServing;
let url: string;
const events: WsEvent[] = [];
const eventWaiters: (() => void)[] = [];
/** What the server logged at warn and above: an `internal` answer is explained by its stack here. */
const serverLog: string[] = [];
const log = pino({ level: 'warn' }, { write: (line: string) => void serverLog.push(line) });

const limits = {
  inboundMessageBytesMax: 4096,
  sendQueueBytesMax: 256 * 1024,
  socketBufferBytesMax: 32 * 1024,
  initialRowsMax: 50,
  resumeTxMax: 40,
};

/** The server's own observer (main-wiring.ts), on real metrics. */
const metrics = new OpsMetrics();
const observeDrops = observeWebSocket(metrics, log);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-ws-'));
  memory = await openTenantMemory(dir, 'acme');
  server = createServer((_req, res) => res.writeHead(404).end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  serving = attachWebSocket(server, {
    authenticate: fixedPrincipal(principal),
    memoryFor: singleMemory(memory),
    tables: memoryExposedTables(),
    limits,
    log,
    observe: (event) => {
      events.push(event);
      observeDrops(event);
      for (const wake of eventWaiters.splice(0)) wake();
    },
  });
  url = `ws://127.0.0.1:${(server.address() as { port: number }).port}/ws`;
});

afterAll(async () => {
  await serving.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await memory.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call(tool: string, args: unknown): Promise<Record<string, any>> {
  const def = memoryTools.find((t) => t.name === tool)!;
  return (await def.call({ memory, caller: principal.caller }, args as never)) as Record<string, any>;
}

async function put(id: string, type: string, attributes: Record<string, unknown> = {}): Promise<number> {
  return (await call('object_put', { id, type, attributes })).offset as number;
}

async function subscribed(client: TestClient, queries: unknown[], after?: number): Promise<Message> {
  client.send({ type: 'subscribe', queries, ...(after === undefined ? {} : { after }) });
  const m = await client.next((x) => x.type === 'subscribed' || x.type === 'error');
  if (m.type === 'error') throw new Error(`subscribe refused: ${JSON.stringify(m)}; server log: ${serverLog.slice(-3).join('') || 'empty'}`);
  return m;
}

/** Every tx message up to and including `lastOffset`. */
async function txUntil(client: TestClient, lastOffset: number): Promise<Message[]> {
  const out: Message[] = [];
  for (;;) {
    const m = await client.nextOfType('tx');
    out.push(m);
    if (m.offset >= lastOffset) return out;
  }
}

async function connected(options: Parameters<typeof TestClient.connect>[1] = {}): Promise<TestClient> {
  const client = await TestClient.connect(url, options);
  const hello = await client.nextOfType('hello');
  expect(hello).toMatchObject({ protocol: 'ioboxx.v1', authenticated: true, tenant: 'acme' });
  return client;
}

function closeEvent(code: number): Promise<WsEvent> {
  return new Promise((resolve) => {
    const check = () => {
      const found = events.find((e) => e.kind === 'close' && e.code === code);
      if (found) resolve(found);
      else eventWaiters.push(check);
    };
    check();
  });
}

describe('subscriptions', () => {
  test('the initial rows, then one tx message per transaction, in offset order, each change once', async () => {
    for (let i = 0; i < 3; i++) await put(`order-${i}`, 'order', { n: i });
    await put('note-0', 'note');
    const client = await connected();
    const first = await subscribed(client, [{ id: 'orders', table: 'objects', where: { type: 'order' } }]);
    expect(first.offset).toBe(memory.store.durableOffset);
    expect(first.queries[0].key).toEqual(['id']);
    expect(first.queries[0].rows.map((r: any) => r.id).sort()).toEqual(['order-0', 'order-1', 'order-2']);

    // Concurrent writers: group commit puts many transactions in one batch.
    const writes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 4 === 3 ? put(`note-${i}`, 'note') : put(`order-${i % 40}`, 'order', { i }))),
    );
    const orderOffsets = writes.filter((_, i) => i % 4 !== 3).sort((a, b) => a - b);
    const txs = await txUntil(client, orderOffsets.at(-1)!);
    expect(txs.map((m) => m.offset)).toEqual(orderOffsets);
    for (const m of txs) {
      expect(m.queries).toHaveLength(1);
      // Each transaction wrote one order: new ids arrive inserted, rewritten ones updated.
      const rows = [...(m.queries[0].inserted ?? []), ...(m.queries[0].updated ?? [])];
      expect(rows).toHaveLength(1);
      expect(rows[0].type).toBe('order');
      expect(rows[0].attributes.i).toBeTypeOf('number');
    }
    // order-0..2 existed; every other id arrives inserted once, then updated.
    const ids = new Set(Array.from({ length: 200 }, (_, i) => i).filter((i) => i % 4 !== 3).map((i) => `order-${i % 40}`));
    const created = [...ids].filter((id) => !['order-0', 'order-1', 'order-2'].includes(id)).length;
    expect(txs.filter((m) => m.queries[0].inserted).length).toBe(created);
    expect(txs.filter((m) => m.queries[0].updated).length).toBe(orderOffsets.length - created);
    client.close();
  });

  test('no tx message reveals a transaction before its write is acknowledged and durable', async () => {
    const client = await connected();
    await subscribed(client, [{ id: 'acks', table: 'objects', where: { type: 'ack' } }]);
    const acked = new Set<number>();
    const violations: string[] = [];
    client.ws.on('message', (data: Buffer) => {
      const m = JSON.parse(data.toString('utf8')) as Message;
      if (m.type !== 'tx') return;
      if (!acked.has(m.offset)) violations.push(`offset ${m.offset} arrived before its acknowledgement`);
      if (memory.store.durableOffset < m.offset) violations.push(`offset ${m.offset} arrived while durable was ${memory.store.durableOffset}`);
    });
    const writes = Array.from({ length: 100 }, (_, i) => put(`ack-${i}`, 'ack').then((offset) => (acked.add(offset), offset)));
    const offsets = await Promise.all(writes);
    await txUntil(client, Math.max(...offsets));
    expect(violations).toEqual([]);
    client.close();
  });

  test('an update moving a row into and out of the predicate arrives as insert, update, delete', async () => {
    const client = await connected();
    const sub = await subscribed(client, [
      { id: 'tasks', table: 'objects', where: { type: 'task' } },
      { id: 'early', table: 'objects', where: { id: 'mover', version: { gte: 1, lt: 3 } } },
    ]);
    expect(sub.queries.map((q: any) => q.rows)).toEqual([[], []]);
    const into = await put('mover', 'task', { step: 1 }); // version 1: into both
    const within = await put('mover', 'task', { step: 2 }); // version 2: updated in both
    const outOf = await put('mover', 'draft', { step: 3 }); // version 3: out of both
    const [m1, m2, m3] = await txUntil(client, outOf);
    expect(m1).toMatchObject({ offset: into, queries: [{ id: 'tasks', inserted: [{ id: 'mover', version: 1 }] }, { id: 'early', inserted: [{ id: 'mover' }] }] });
    expect(m2).toMatchObject({ offset: within, queries: [{ id: 'tasks', updated: [{ id: 'mover', version: 2, attributes: { step: 2 } }] }, { id: 'early', updated: [{ version: 2 }] }] });
    expect(m3).toMatchObject({ offset: outOf, queries: [{ id: 'tasks', deleted: [{ id: 'mover', type: 'task', version: 2 }] }, { id: 'early', deleted: [{ version: 2 }] }] });
    client.close();
  });

  test('a subscribe while others commit: no tx at or below its offset follows its subscribed, none is sent twice', async () => {
    const client = await connected();
    await subscribed(client, [{ id: 'busy', table: 'objects', where: { type: 'busy' } }]);
    // Writers keep commits in flight, so a subscribe's read often waits for its offset to be durable.
    let writing = true;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; writing; i++) await put(`busy-${w}-${i % 5}`, 'busy');
    });
    for (let i = 0; i < 30; i++) await subscribed(client, [{ id: `late-${i}`, table: 'objects', where: { type: 'late' } }]);
    writing = false;
    await Promise.all(writers);
    await txUntil(client, memory.store.durableOffset);
    // A client keeps the offset of the last message it applied and resumes after it: an older
    // tx arriving behind a subscribed would be lost on a reconnect (or dropped as a duplicate).
    const behind: string[] = [];
    let at = -1;
    for (const m of client.received) {
      if (m.type !== 'tx' && m.type !== 'subscribed') continue;
      // Offsets only grow: each tx past everything before it, a subscribed at least as far.
      if (m.type === 'tx' ? m.offset <= at : m.offset < at) behind.push(`${m.type} ${m.offset} after ${at}`);
      at = Math.max(at, m.offset);
    }
    expect(behind).toEqual([]);
    client.close();
  }, 30_000);

  test('unsubscribe ends a query: later transactions do not mention it', async () => {
    const client = await connected();
    await subscribed(client, [
      { id: 'a', table: 'objects', where: { type: 'alpha' } },
      { id: 'b', table: 'objects', where: { type: { in: ['alpha', 'beta'] } } },
    ]);
    // An id named twice is ended (and listed) once.
    client.send({ type: 'unsubscribe', ids: ['a', 'nope', 'a', 'nope'] });
    expect(await client.nextOfType('unsubscribed')).toEqual({ type: 'unsubscribed', ids: ['a'] });
    expect(await client.nextOfType('error')).toMatchObject({ code: 'not_found', ids: ['nope'] });
    const offset = await put('alpha-1', 'alpha');
    const [m] = await txUntil(client, offset);
    expect(m!.queries.map((q: any) => q.id)).toEqual(['b']);
    client.close();
  });

  test('vectors travel as arrays of numbers, in JSON and in msgpack', async () => {
    await put('vec-obj', 'doc');
    const json = await connected();
    const packed = await connected({ protocols: ['ioboxx.v1.msgpack'] });
    const query = [{ id: 'e', table: 'embeddings', where: { object_id: 'vec-obj' } }];
    await subscribed(json, query);
    packed.sendPacked({ type: 'subscribe', queries: query }); // a msgpack client may send binary frames too
    expect(await packed.nextOfType('subscribed')).toMatchObject({ queries: [{ id: 'e', rows: [] }] });
    const offset = (await call('embedding_put', { object_id: 'vec-obj', model: 'm3', vector: [0.5, -1, 2] })).offset as number;
    for (const client of [json, packed]) {
      const [m] = await txUntil(client, offset);
      expect(m!.queries[0].inserted[0].vector).toEqual([0.5, -1, 2]);
    }
    const hello = packed.received[0]!;
    expect(hello).toMatchObject({ type: 'hello', format: 'msgpack' });
    json.close();
    packed.close();
  });
});

describe('resume', () => {
  test('after a dropped connection: exactly the transactions after the last offset, then live', async () => {
    const reference = await connected();
    const query = [{ id: 'r', table: 'objects', where: { type: 'resumable' } }];
    await subscribed(reference, query);
    const client = await connected();
    await subscribed(client, query);
    const before = await put('res-0', 'resumable');
    const [seen] = await txUntil(client, before);
    client.ws.terminate(); // dropped, no close handshake
    await client.closed;

    const whileAway: number[] = [];
    for (let i = 1; i <= 15; i++) whileAway.push(await put(`res-${i}`, i % 3 === 0 ? 'other' : 'resumable', { i }));
    const again = await connected();
    const resumed = await subscribed(again, query, seen!.offset);
    expect(resumed).toMatchObject({ offset: seen!.offset, resumed: true, reset: false });
    const live = await Promise.all([put('res-live-1', 'resumable'), put('res-live-2', 'resumable')]);
    const last = Math.max(...live);
    const afterResume = await txUntil(again, last);
    const expected = (await txUntil(reference, last)).filter((m) => m.offset > seen!.offset);
    expect(afterResume.map((m) => m.offset)).toEqual(expected.map((m) => m.offset));
    expect(afterResume).toEqual(expected);
    reference.close();
    again.close();
  });

  test('a msgpack client whose integers travel as int64 (Go\'s encoder by default) filters and resumes as any other', async () => {
    const query = (where: unknown) => [{ id: 'wide', table: 'objects', where }];
    const first = await put('wide-0', 'wide');
    const second = await put('wide-0', 'wide');
    const client = await connected({ protocols: ['ioboxx.v1.msgpack'] });
    // A BigInt is packed as int64 (0xd3), as Go's vmihailenco/msgpack writes an int64 unless told to compact it.
    client.sendPacked({ type: 'subscribe', queries: query({ type: 'wide', version: { gte: 2n } }), after: BigInt(first) });
    const resumed = await client.next((m) => m.type === 'subscribed' || m.type === 'error');
    expect(resumed).toMatchObject({ type: 'subscribed', resumed: true, offset: first });
    const [m] = await txUntil(client, second);
    expect(m).toMatchObject({ offset: second, queries: [{ id: 'wide', inserted: [{ id: 'wide-0', version: 2 }] }] });
    // Past a safe integer it is still refused, by name.
    client.sendPacked({ type: 'subscribe', queries: [{ id: 'huge', table: 'objects', where: { version: 2n ** 60n } }] });
    expect(await client.nextOfType('error')).toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/safe integer/) });
    client.close();
  });

  test('further back than resumeTxMax: a fresh full result, flagged reset', async () => {
    const client = await connected();
    const query = [{ id: 'far', table: 'objects', where: { type: 'far' } }];
    const first = await subscribed(client, query);
    client.close();
    for (let i = 0; i < limits.resumeTxMax + 1; i++) await put(`far-${i}`, 'far', { i });
    const again = await connected();
    const fresh = await subscribed(again, query, first.offset);
    expect(fresh).toMatchObject({ resumed: false, reset: true, offset: memory.store.durableOffset });
    expect(fresh.queries[0].rows).toHaveLength(limits.resumeTxMax + 1);
    // An offset the store never reached (another history): also a fresh result.
    again.close();
    const third = await connected();
    expect(await subscribed(third, query, memory.store.durableOffset + 1000)).toMatchObject({ resumed: false, reset: true });
    third.close();
  });
});

describe('bad input', () => {
  test('malformed messages and refused queries are answered with an error; the connection stays', async () => {
    const client = await connected();
    const cases: [unknown, string, RegExp][] = [
      ['{not json', 'invalid_argument', /not JSON/],
      [{ type: 'launch' }, 'invalid_argument', /unknown message type/],
      [{ kind: 'ping' }, 'invalid_argument', /a message is an object with a string type/],
      [{ type: 'subscribe', queries: [] }, 'invalid_argument', /non-empty/],
      [{ type: 'subscribe', queries: [{ id: 'x y', table: 'objects' }] }, 'invalid_argument', /query id/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects', where: { colour: 'red' } }] }, 'invalid_argument', /no column/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects', where: { version: 'two' } }] }, 'invalid_argument', /safe integer/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects', where: { attributes: { eq: 1 } } }] }, 'invalid_argument', /json columns/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects', where: { version: { near: 2 } } }] }, 'invalid_argument', /unknown operator/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'secrets' }] }, 'not_found', /no table secrets/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'idempotency_keys' }] }, 'not_found', /no table/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects' }], after: -5 }, 'invalid_argument', /after/],
      // A history names the line of transactions of `after` (PROTOCOL.md, Resume): alone, or not an id, it is refused.
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects' }], history: 'a'.repeat(32) }, 'invalid_argument', /history goes with after/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects' }], after: 1, history: 'not-an-id' }, 'invalid_argument', /history must be .*32 hex digits/],
      // A misspelt key is refused, not ignored: a `were` ignored served every row of the table.
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects', were: { type: 'order' } }] }, 'invalid_argument', /queries\[0\]: unknown key "were" \(keys: id, table, where\)/],
      [{ type: 'subscribe', queries: [{ id: 'q', table: 'objects' }], afer: 3 }, 'invalid_argument', /subscribe: unknown key "afer"/],
      [{ type: 'unsubscribe', ids: ['q'], all: true }, 'invalid_argument', /unsubscribe: unknown key "all"/],
    ];
    for (const [message, code, text] of cases) {
      client.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
      const error = await client.nextOfType('error');
      expect(error.code, JSON.stringify(message)).toBe(code);
      expect(error.message).toMatch(text);
    }
    client.send({ type: 'ping' });
    expect(await client.nextOfType('pong')).toMatchObject({ offset: memory.store.durableOffset, history: memory.store.history.id });
    client.close();
  });

  test(`messages past inboundPendingMax waiting are dropped with busy naming their query ids: every subscribe is answered once`, async () => {
    const client = await connected();
    const ids = Array.from({ length: 200 }, (_, i) => `burst-${i}`);
    for (const id of ids) client.send({ type: 'subscribe', queries: [{ id, table: 'objects', where: { type: 'burst' } }] });
    const answered: string[] = [];
    let busy = 0;
    while (answered.length < ids.length) {
      const m = await client.next((x) => x.type === 'subscribed' || x.type === 'error');
      if (m.type === 'error') {
        expect(m.code).toBe('busy');
        busy++;
      }
      answered.push(...(m.type === 'subscribed' ? m.queries.map((q: { id: string }) => q.id) : m.ids));
    }
    expect(busy).toBeGreaterThan(0);
    expect([...answered].sort()).toEqual([...ids].sort());
    client.close();
  });

  test('an initial result past initialRowsMax is refused, naming its queries', async () => {
    await Promise.all(Array.from({ length: limits.initialRowsMax + 1 }, (_, i) => put(`many-${i}`, 'many')));
    const client = await connected();
    client.send({ type: 'subscribe', queries: [{ id: 'all-many', table: 'objects', where: { type: 'many' } }] });
    expect(await client.nextOfType('error')).toMatchObject({ code: 'limit_exceeded', ids: ['all-many'] });
    // The refused query holds nothing: its id is free again.
    const ok = await subscribed(client, [{ id: 'all-many', table: 'objects', where: { type: 'many', id: { lt: 'many-10' } } }]);
    expect(ok.queries[0].rows.map((r: any) => r.id).sort()).toEqual(['many-0', 'many-1']);
    client.close();
  });

  test('an oversized message closes the connection with 1009', async () => {
    const client = await connected();
    client.send({ type: 'ping', padding: 'x'.repeat(limits.inboundMessageBytesMax) });
    expect((await client.closed).code).toBe(wsClose.messageTooBig);
  });

  test('an unknown subprotocol, an unknown path, a foreign Origin or Host are refused at upgrade', async () => {
    expect((await TestClient.refusal(url, { protocols: ['graphql-ws'] })).status).toBe(400);
    expect((await TestClient.refusal(url.replace(/\/ws$/, '/wss'))).status).toBe(404);
    expect((await TestClient.refusal(url, { headers: { origin: 'https://evil.example' } })).status).toBe(403);
    // DNS rebinding: a loopback server answers only to loopback Host names.
    expect((await TestClient.refusal(url, { headers: { host: 'evil.example' } })).status).toBe(403);
  });
});

describe('bounded memory', () => {
  test('a consumer that never reads is cut off with 4008 while the others keep up', async () => {
    const query = [{ id: 'bulk', table: 'objects', where: { type: 'bulk' } }];
    const slow = await connected();
    await subscribed(slow, query);
    const fast = await connected();
    await subscribed(fast, query);
    slow.ws.pause(); // stops reading from the socket: the kernel buffers fill, then ours
    const cut = closeEvent(wsClose.slowConsumer);
    let cutOff = false;
    void cut.then(() => (cutOff = true));
    const blob = 'y'.repeat(100 * 1024);
    const offsets: number[] = [];
    for (let i = 0; i < 2000 && !cutOff; i++) offsets.push(await put(`bulk-${i}`, 'bulk', { i, blob }));
    expect((await cut).kind).toBe('close');
    // The fast consumer saw every transaction, in order, while the slow one was cut off.
    const last = offsets.at(-1)!;
    const seen = (await txUntil(fast, last)).map((m) => m.offset);
    expect(seen).toEqual(offsets);
    // Once it reads again, the slow one finds the documented close code after what it had.
    slow.ws.resume();
    expect(await slow.closed).toMatchObject({ code: wsClose.slowConsumer });
    // The operator sees it: the drop is counted.
    const drops = (await metrics.registry.getSingleMetric('ioboxx_subscription_drops_total')!.get()).values;
    expect(drops.find((v) => v.labels['reason'] === 'slow_consumer')?.value).toBe(1);
    fast.close();
  }, 60_000);
});

describe('refused subscribes', () => {
  test('a subscribe refused after its read leaves nothing starting: retried under writes, it does not cut the connection off', async () => {
    const other = createServer((_req, res) => res.writeHead(404).end());
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    // Every initial result is too large: each subscribe is refused once read (and its hub subscriptions taken).
    const live = attachWebSocket(other, { authenticate: fixedPrincipal(principal), memoryFor: singleMemory(memory), tables: memoryExposedTables(), limits: { initialResultBytesMax: 10 } });
    const client = await TestClient.connect(`ws://127.0.0.1:${(other.address() as { port: number }).port}/ws`);
    await client.nextOfType('hello');
    let writing = true;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      while (writing) await put(`refused-${w}`, 'refused');
    });
    const queries = Array.from({ length: 100 }, (_, i) => ({ id: `all-${i}`, table: 'objects', where: { type: 'refused' } }));
    // Each refusal saw the changes committed while its read waited: together far past startingEventsMax.
    for (let i = 0; i < 400 && client.ws.readyState === client.ws.OPEN; i++) {
      client.send({ type: 'subscribe', queries });
      expect(await client.next((m) => m.type === 'error' || m.type === 'subscribed')).toMatchObject({ type: 'error', code: 'limit_exceeded' });
    }
    writing = false;
    await Promise.all(writers);
    client.send({ type: 'ping' });
    expect(await client.nextOfType('pong')).toMatchObject({ type: 'pong' });
    client.close();
    await live.close();
    await new Promise<void>((resolve) => other.close(() => resolve()));
  }, 60_000);
});

describe('shutdown', () => {
  test('close() ends every connection with 1001 and waits for them', async () => {
    const other = createServer((_req, res) => res.writeHead(404).end());
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    const live = attachWebSocket(other, { authenticate: fixedPrincipal(principal), memoryFor: singleMemory(memory), tables: memoryExposedTables() });
    const client = await TestClient.connect(`ws://127.0.0.1:${(other.address() as { port: number }).port}/ws`);
    await client.nextOfType('hello');
    expect(live.connections).toBe(1);
    await live.close();
    expect(live.connections).toBe(0);
    expect((await client.closed).code).toBe(wsClose.goingAway);
    await new Promise<void>((resolve) => other.close(() => resolve()));
  });
});
