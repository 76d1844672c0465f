/**
 * Issue 3's scripted agent session, end to end: the real built server process
 * (`node bin/ioboxx-memory.js serve --http|--stdio`, local mode) driven by real SDK clients of
 * both protocol eras. One session per era over Streamable HTTP (types, objects, links, find,
 * neighbours, embeddings, chat, a BPMN run, history and as-of reads); bad input of every kind
 * answered with its code and leaving state untouched; SIGKILL after acknowledged writes and a
 * new process serving all of them; and over stdio, a resource update seen on the wire only
 * after the write's result (older: resources/subscribe, newer: subscriptions/listen).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client as OlderClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as OlderStdioTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as NewerClient } from '@modelcontextprotocol/client';
import { StdioClientTransport as NewerStdioTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectNewerHttp, connectOlderHttp, newerRevision, toolErrorOf, type McpTestClient, type ToolResult } from '../support/mcp-clients.js';
import { parsePrometheusText } from '../ops/prometheus-text.js';
import { baseEnv, repoRoot, serverBin, startHttpServer, type ServerProcess } from './server-process.js';

let httpDataDir: string;
let stdioDataDir: string;
const running: ServerProcess[] = [];

beforeAll(async () => {
  httpDataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-e2e-http-'));
  stdioDataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-e2e-stdio-'));
});

afterAll(async () => {
  for (const server of running) await server.kill();
  await rm(httpDataDir, { recursive: true, force: true });
  await rm(stdioDataDir, { recursive: true, force: true });
});

async function httpServer(dataDir: string): Promise<ServerProcess> {
  const server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  running.push(server);
  return server;
}

function ok(result: ToolResult): Record<string, unknown> {
  if (result.isError === true) throw new Error(`tool error: ${JSON.stringify(toolErrorOf(result))}`);
  expect(result.structuredContent).toBeDefined();
  return result.structuredContent!;
}

async function call(client: McpTestClient, name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  let result: ToolResult;
  try {
    result = await client.callTool(name, args);
  } catch (error) {
    throw new Error(`${client.era} ${name} failed: ${(error as Error).message}`, { cause: error });
  }
  return ok(result);
}

async function refused(client: McpTestClient, name: string, args: Record<string, unknown>): Promise<string> {
  const result = await client.callTool(name, args);
  const error = toolErrorOf(result);
  expect(error, `${name} should have been refused`).toBeDefined();
  expect(error!.message.length).toBeGreaterThan(0);
  return error!.code;
}

/** What one session wrote and was acknowledged, for reading back after a restart. */
interface Written {
  readonly tag: string;
  readonly objects: Record<string, { version: number; attributes: Record<string, unknown> }>;
  readonly thread: string;
  readonly messages: readonly string[];
  readonly instance: string;
  readonly model: string;
  readonly firstVersionOffset: number;
  readonly cursor: string;
}

/** The scripted agent session; `tag` keeps two eras' sessions apart in one store. */
async function agentSession(client: McpTestClient, tag: string): Promise<Written> {
  const person = `person_${tag}`;
  const defined = await call(client, 'type_define', {
    name: person,
    description: 'a person the agent met',
    schema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer', minimum: 0 } }, required: ['name'] },
  });
  expect(defined).toMatchObject({ name: person, version: 1 });
  expect(ok(await client.callTool('type_get', { name: person }))['schema']).toMatchObject({ required: ['name'] });

  const alice = `${tag}-alice`;
  const bob = `${tag}-bob`;
  const carol = `${tag}-carol`;
  const project = `${tag}-project`;
  const putAlice = await call(client, 'object_put', { id: alice, type: person, attributes: { name: 'Alice', age: 34 } });
  expect(putAlice).toMatchObject({ id: alice, version: 1 });
  expect(typeof putAlice['offset']).toBe('number');
  await call(client, 'object_put', { id: bob, type: person, attributes: { name: 'Bob', age: 28 } });
  await call(client, 'object_put', { id: carol, type: person, attributes: { name: 'Carol', age: 51 } });
  await call(client, 'object_put', { id: project, type: `project_${tag}`, attributes: { title: 'Atlas' } });
  expect(await call(client, 'object_get', { id: alice })).toEqual({ id: alice, type: person, attributes: { name: 'Alice', age: 34 }, version: 1 });

  for (const [src, kind, dst] of [[alice, 'works_on', project], [bob, 'works_on', project], [alice, 'knows', bob]] as const) {
    expect(await call(client, 'object_link', { src, kind, dst })).toMatchObject({ created: true });
  }

  const older = await call(client, 'object_find', { type: person, where: [{ path: 'age', op: 'gt', value: 30 }], order_by: { path: 'age' } });
  expect((older['objects'] as Array<{ id: string }>).map((o) => o.id)).toEqual([alice, carol]);
  const firstPage = await call(client, 'object_find', { type: person, order_by: { path: 'age' }, limit: 2 });
  expect((firstPage['objects'] as Array<{ id: string }>).map((o) => o.id)).toEqual([bob, alice]);
  const cursor = firstPage['next_cursor'] as string;
  const secondPage = await call(client, 'object_find', { type: person, order_by: { path: 'age' }, limit: 2, cursor });
  expect((secondPage['objects'] as Array<{ id: string }>).map((o) => o.id)).toEqual([carol]);

  const workers = await call(client, 'object_neighbors', { id: project, direction: 'in', kinds: ['works_on'] });
  expect((workers['nodes'] as Array<{ id: string }>).map((n) => n.id).filter((id) => id !== project).sort()).toEqual([alice, bob]);
  const twoHops = await call(client, 'object_neighbors', { id: bob, direction: 'both', depth: 2 });
  expect((twoHops['nodes'] as Array<{ id: string }>).map((n) => n.id)).toEqual(expect.arrayContaining([alice, project]));

  const model = `model-${tag}`;
  await call(client, 'embedding_put', { object_id: alice, model, vector: [1, 0, 0, 0] });
  await call(client, 'embedding_put', { object_id: bob, model, vector: [0, 1, 0, 0] });
  await call(client, 'embedding_put', { object_id: project, model, vector: [0.9, 0.1, 0, 0] });
  const near = await call(client, 'embedding_search', { model, vector: [1, 0.05, 0, 0], k: 2 });
  expect((near['results'] as Array<{ id?: string; object_id?: string }>).map((r) => r.id ?? r.object_id)).toEqual([alice, project]);
  const nearPeople = await call(client, 'embedding_search', { model, vector: [1, 0.05, 0, 0], k: 2, type: person });
  expect((nearPeople['results'] as Array<{ id?: string; object_id?: string }>).map((r) => r.id ?? r.object_id)).toEqual([alice, bob]);

  const thread = (await call(client, 'chat_thread_create', { title: `planning ${tag}` }))['thread'] as string;
  const messages = ['who works on Atlas?', 'Alice and Bob.', 'thanks'];
  const roles = ['user', 'assistant', 'user'];
  for (const [i, content] of messages.entries()) {
    expect(await call(client, 'chat_message_append', { thread, role: roles[i], content, author: 'agent' })).toMatchObject({ seq: i + 1 });
  }
  const listed = await call(client, 'chat_messages_list', { thread });
  expect((listed['messages'] as Array<{ content: string }>).map((m) => m.content)).toEqual(messages);

  const started = await call(client, 'bpmn_start', { definition: 'onboarding', start_node: 'start', variables: { who: alice } });
  const instance = started['instance'] as string;
  const moved = await call(client, 'bpmn_move_token', { instance, token: started['token'], to: 'review', user_task: { name: 'Review access' } });
  await call(client, 'bpmn_complete_task', { instance, task: moved['task'], result: { approved: true } });
  await call(client, 'bpmn_move_token', { instance, token: started['token'], to: 'end' });
  expect(await call(client, 'bpmn_complete', { instance })).toMatchObject({ state: 'completed' });
  const run = await call(client, 'bpmn_instance_get', { instance });
  expect(run).toMatchObject({ instance, definition: 'onboarding', state: 'completed' });
  expect((run['tasks'] as Array<{ state: string }>).map((t) => t.state)).toEqual(['completed']);

  const patched = await call(client, 'object_patch', { id: alice, set: { age: 35 }, expected_version: 1 });
  expect(patched).toMatchObject({ id: alice, version: 2 });
  expect(patched['offset'] as number).toBeGreaterThan(putAlice['offset'] as number);
  const history = await call(client, 'object_history', { id: alice, include_attributes: true });
  const versions = history['versions'] as Array<{ version: number; offset: number; reducer?: string }>;
  expect(versions.map((v) => v.version)).toEqual([2, 1]);
  expect(versions.map((v) => v.offset)).toEqual([patched['offset'], putAlice['offset']]);
  const asOf = await call(client, 'object_get_as_of', { id: alice, offset: putAlice['offset'] });
  expect(asOf).toMatchObject({ id: alice, version: 1, attributes: { name: 'Alice', age: 34 } });

  const read = await client.readResource(`memory://objects/${alice}`);
  expect(JSON.parse(read.contents[0]!.text!)).toMatchObject({ id: alice, version: 2, attributes: { age: 35 } });

  return {
    tag, thread, messages, instance, model, cursor,
    firstVersionOffset: putAlice['offset'] as number,
    objects: {
      [alice]: { version: 2, attributes: { name: 'Alice', age: 35 } },
      [bob]: { version: 1, attributes: { name: 'Bob', age: 28 } },
      [carol]: { version: 1, attributes: { name: 'Carol', age: 51 } },
      [project]: { version: 1, attributes: { title: 'Atlas' } },
    },
  };
}

/** Every acknowledged write of a session, read back (after a restart, by another process). */
async function expectAllServed(client: McpTestClient, written: Written): Promise<void> {
  for (const [id, expected] of Object.entries(written.objects)) {
    expect(await call(client, 'object_get', { id })).toMatchObject({ id, ...expected });
  }
  const listed = await call(client, 'chat_messages_list', { thread: written.thread });
  expect((listed['messages'] as Array<{ content: string }>).map((m) => m.content)).toEqual(written.messages);
  expect(await call(client, 'bpmn_instance_get', { instance: written.instance })).toMatchObject({ state: 'completed' });
  const near = await call(client, 'embedding_search', { model: written.model, vector: [1, 0, 0, 0], k: 1 });
  expect((near['results'] as Array<{ id?: string; object_id?: string }>).map((r) => r.id ?? r.object_id)).toEqual([`${written.tag}-alice`]);
  const asOf = await call(client, 'object_get_as_of', { id: `${written.tag}-alice`, offset: written.firstVersionOffset });
  expect(asOf).toMatchObject({ version: 1, attributes: { age: 34 } });
  const workers = await call(client, 'object_neighbors', { id: `${written.tag}-project`, direction: 'in' });
  expect((workers['nodes'] as Array<{ id: string }>).map((n) => n.id)).toEqual(expect.arrayContaining([`${written.tag}-alice`, `${written.tag}-bob`]));
}

/** Bad input of every kind: each refused with its code, and the state it aimed at unchanged. */
async function badInput(client: McpTestClient, written: Written): Promise<void> {
  const alice = `${written.tag}-alice`;
  const person = `person_${written.tag}`;
  const before = await call(client, 'object_get', { id: alice });
  const peopleBefore = await call(client, 'object_find', { type: person, limit: 50 });

  // Schema violations of the tool's own arguments.
  expect(await refused(client, 'object_put', { type: 42, attributes: {} })).toBe('invalid_argument');
  expect(await refused(client, 'object_put', { id: alice, type: person })).toBe('invalid_argument');
  // Attributes that break the type's JSON Schema: wrong type, missing required.
  expect(await refused(client, 'object_put', { id: alice, type: person, attributes: { name: 'Alice', age: 'old' } })).toBe('invalid_argument');
  expect(await refused(client, 'object_put', { id: `${written.tag}-nameless`, type: person, attributes: { age: 3 } })).toBe('invalid_argument');
  expect(await refused(client, 'object_patch', { id: alice, set: { age: -1 } })).toBe('invalid_argument');
  // Oversized arguments (over the 1 MiB bound on a call's JSON).
  expect(await refused(client, 'object_put', { id: alice, type: person, attributes: { name: 'x'.repeat(1_100_000) } })).toBe('limit_exceeded');
  // A stale expected_version.
  expect(await refused(client, 'object_put', { id: alice, type: person, attributes: { name: 'Mallory' }, expected_version: 1 })).toBe('version_conflict');
  expect(await refused(client, 'object_patch', { id: alice, set: { age: 99 }, expected_version: 1 })).toBe('version_conflict');
  // A vector whose dimensions differ from the model's.
  expect(await refused(client, 'embedding_put', { object_id: alice, model: written.model, vector: [1, 0, 0] })).toBe('invalid_argument');
  expect(await refused(client, 'embedding_search', { model: written.model, vector: [1, 0, 0], k: 1 })).toBe('invalid_argument');
  // Forged, edited and moved cursors.
  expect(await refused(client, 'object_find', { type: person, cursor: 'eyJwIjoxfQ.forged' })).toBe('invalid_argument');
  const [body, tag] = written.cursor.split('.') as [string, string];
  expect(await refused(client, 'object_find', { type: person, order_by: { path: 'age' }, limit: 2, cursor: `${body}A.${tag}` })).toBe('invalid_argument');
  expect(await refused(client, 'object_find', { type: person, order_by: { path: 'name' }, limit: 2, cursor: written.cursor })).toBe('invalid_argument');
  // Unknown tools and links to objects that do not exist.
  expect(await refused(client, 'object_teleport', { id: alice })).toBe('not_found');
  expect(await refused(client, 'object_link', { src: alice, kind: 'knows', dst: `${written.tag}-nobody` })).toBe('not_found');
  // Unknown URIs: a JSON-RPC error carrying not_found.
  await expect(client.readResource(`memory://objects/${written.tag}-nobody`)).rejects.toThrow();
  await expect(client.readResource('memory://nowhere/x')).rejects.toThrow();

  // Nothing written: the object, the type's population and the embedding are as before.
  expect(await call(client, 'object_get', { id: alice })).toEqual(before);
  expect(await call(client, 'object_find', { type: person, limit: 50 })).toMatchObject({ objects: peopleBefore['objects'] });
  const near = await call(client, 'embedding_search', { model: written.model, vector: [1, 0, 0, 0], k: 3 });
  expect((near['results'] as unknown[]).length).toBe(3);
  const history = await call(client, 'object_history', { id: alice });
  expect((history['versions'] as unknown[]).length).toBe(2);
}

/** The server's /metrics times every durable commit it counts (call -> acknowledgement). */
async function expectCommitsTimed(url: string): Promise<void> {
  const families = parsePrometheusText(await (await fetch(`${url}/metrics`)).text());
  const sample = (name: string) => [...families.values()].flatMap((f) => f.samples).find((s) => s.name === name)?.value;
  const commits = sample('ioboxx_commits_total');
  expect(commits).toBeGreaterThan(0);
  expect(sample('ioboxx_commit_latency_seconds_count')).toBe(commits);
  expect(sample('ioboxx_commit_latency_seconds_sum')).toBeGreaterThan(0);
}

describe('a scripted agent session through the real server process', () => {
  test('both eras over Streamable HTTP; bad input refused with nothing written; SIGKILL then a new process serves every acknowledged write', async () => {
    const first = await httpServer(httpDataDir);
    const older = await connectOlderHttp({ url: `${first.url}/mcp` });
    const newer = await connectNewerHttp({ url: `${first.url}/mcp` });
    const olderWritten = await agentSession(older, 'old');
    const newerWritten = await agentSession(newer, 'new');
    // Each era reads what the other wrote: one tenant store behind both.
    await expectAllServed(newer, olderWritten);
    await expectAllServed(older, newerWritten);
    await badInput(older, olderWritten);
    await badInput(newer, newerWritten);
    // A last acknowledged write right before the kill.
    const last = await call(older, 'object_put', { id: 'old-last', type: 'note', attributes: { text: 'acked before SIGKILL' } });
    await expectCommitsTimed(first.url);
    await first.kill();
    await older.close().catch(() => undefined);
    await newer.close().catch(() => undefined);

    const second = await httpServer(httpDataDir);
    const olderAgain = await connectOlderHttp({ url: `${second.url}/mcp` });
    const newerAgain = await connectNewerHttp({ url: `${second.url}/mcp` });
    try {
      await expectAllServed(olderAgain, olderWritten);
      await expectAllServed(newerAgain, newerWritten);
      expect(await call(newerAgain, 'object_get', { id: 'old-last' })).toMatchObject({ version: 1, attributes: { text: 'acked before SIGKILL' } });
      // A cursor from the killed process is stale: the new process refuses it.
      expect(await refused(olderAgain, 'object_find', { type: 'person_old', order_by: { path: 'age' }, limit: 2, cursor: olderWritten.cursor })).toBe('invalid_argument');
      // The next write goes after the last acknowledged one.
      const next = await call(olderAgain, 'object_put', { type: 'note', attributes: { text: 'after restart' } });
      expect(next['offset'] as number).toBeGreaterThan(last['offset'] as number);
    } finally {
      await olderAgain.close();
      await newerAgain.close();
      await second.stop();
    }
  }, 60_000);
});

/** The order messages reached the client's transport: responses by offset, updates by URI. */
type WireEvent = { kind: 'result'; offset: number | undefined } | { kind: 'update'; uri: string };

interface TappedTransport {
  onmessage?: ((message: never, extra?: never) => void) | undefined;
}

/** Wrap the transport's onmessage (set by connect) to log each incoming message in order. */
function tapWire(transport: TappedTransport, events: WireEvent[]): void {
  const deliver = transport.onmessage!;
  transport.onmessage = ((message: { id?: unknown; method?: string; params?: { uri?: string }; result?: { structuredContent?: { offset?: number } } }, extra?: never) => {
    if (message.method === 'notifications/resources/updated') events.push({ kind: 'update', uri: message.params!.uri! });
    else if (message.id !== undefined && message.result !== undefined) events.push({ kind: 'result', offset: message.result.structuredContent?.offset });
    deliver(message as never, extra);
  }) as TappedTransport['onmessage'];
}

function stdioParameters() {
  return {
    command: process.execPath,
    args: [serverBin, 'serve', '--stdio'],
    env: { ...baseEnv(), IOBOXX_DATA_DIR: stdioDataDir, IOBOXX_LOG_LEVEL: 'warn' },
    cwd: repoRoot,
    stderr: 'ignore' as const,
  };
}

/** A FIFO of update URIs with awaiting readers: the test waits for the event, never sleeps. */
function updateQueue() {
  const uris: string[] = [];
  const waiters: Array<(uri: string) => void> = [];
  return {
    push(uri: string) {
      const waiter = waiters.shift();
      if (waiter) waiter(uri);
      else uris.push(uri);
    },
    next(): Promise<string> {
      const uri = uris.shift();
      return uri !== undefined ? Promise.resolve(uri) : new Promise((resolve) => waiters.push(resolve));
    },
  };
}

/** The write's result reaches the wire before the update for the URI it changed. */
function expectAckBeforeUpdate(events: readonly WireEvent[], offset: number, uri: string): void {
  const ackAt = events.findIndex((e) => e.kind === 'result' && e.offset === offset);
  const updateAt = events.findIndex((e) => e.kind === 'update' && e.uri === uri);
  expect(ackAt, `result with offset ${offset} seen`).toBeGreaterThanOrEqual(0);
  expect(updateAt, `update for ${uri} seen`).toBeGreaterThanOrEqual(0);
  expect(updateAt, `update for ${uri} must follow the result at offset ${offset}: ${JSON.stringify(events)}`).toBeGreaterThan(ackAt);
}

describe('resource updates over stdio follow the acknowledged write', () => {
  test('older era: resources/subscribe', async () => {
    const events: WireEvent[] = [];
    const updates = updateQueue();
    const client = new OlderClient({ name: 'e2e-older', version: '0' });
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (note) => updates.push(note.params.uri));
    const transport = new OlderStdioTransport(stdioParameters());
    await client.connect(transport);
    tapWire(transport as unknown as TappedTransport, events);
    try {
      const put = await client.callTool({ name: 'object_put', arguments: { id: 'watched-old', type: 'note', attributes: { n: 0 } } });
      expect(put.isError).not.toBe(true);
      const uri = 'memory://objects/watched-old';
      // Another form of the same URI would be accepted and never fire (notifications name the canonical one): refused, naming it.
      await expect(client.subscribeResource({ uri: 'memory://objects/watched%2Dold' })).rejects.toThrow(`subscribe to ${uri}, not memory://objects/watched%2Dold`);
      await client.subscribeResource({ uri });
      const patch = await client.callTool({ name: 'object_patch', arguments: { id: 'watched-old', set: { n: 1 } } });
      const offset = (patch.structuredContent as { offset: number }).offset;
      expect(await updates.next()).toBe(uri);
      expectAckBeforeUpdate(events, offset, uri);
      // The update means the write is readable.
      const read = await client.readResource({ uri });
      expect(JSON.parse((read.contents[0] as { text: string }).text)).toMatchObject({ version: 2, attributes: { n: 1 } });
    } finally {
      await client.close();
    }
  }, 30_000);

  test('newer era (2026-07-28): subscriptions/listen', async () => {
    const events: WireEvent[] = [];
    const updates = updateQueue();
    const client = new NewerClient({ name: 'e2e-newer', version: '0' }, { versionNegotiation: { mode: { pin: newerRevision } } });
    client.setNotificationHandler('notifications/resources/updated', (note) => updates.push(note.params.uri));
    const transport = new NewerStdioTransport(stdioParameters());
    await client.connect(transport);
    tapWire(transport as unknown as TappedTransport, events);
    try {
      // The store written by the older era's process (closed cleanly) is served here too.
      const before = await client.callTool({ name: 'object_get', arguments: { id: 'watched-old' } });
      expect(before.structuredContent).toMatchObject({ version: 2 });
      const uri = 'memory://objects/watched-old';
      await expect(client.listen({ resourceSubscriptions: ['memory://objects/watched%2Dold'] })).rejects.toThrow(`subscribe to ${uri}, not memory://objects/watched%2Dold`);
      await expect(client.listen({ resourceSubscriptions: ['garbage'] })).rejects.toThrow(/not a memory:\/\/ URI/);
      const subscription = await client.listen({ resourceSubscriptions: [uri] });
      const patch = await client.callTool({ name: 'object_patch', arguments: { id: 'watched-old', set: { n: 2 } } });
      const offset = (patch.structuredContent as { offset: number }).offset;
      expect(await updates.next()).toBe(uri);
      expectAckBeforeUpdate(events, offset, uri);
      await subscription.close();
    } finally {
      await client.close();
    }
  }, 30_000);
});
