/**
 * A tool call that waits on its tenant's store being opened hears that open as MCP progress, when
 * it asked for progress: the real built server over stdio (the store opens on the first call),
 * over the HTTP+SSE transport and over a 2025-era Streamable HTTP session (the tenant registry
 * opens it; the call's POST is answered as an SSE stream), a real 1.x SDK client passing
 * `onprogress` (so a progressToken) on a tool call or a resource read, a store whose open replays
 * tens of thousands of transactions. Once the store is open, a call hears nothing; nor does a call that did not ask.
 * Over 2026-era Streamable HTTP (the 2.x client pinned to 2026-07-28) too: a request that asks for
 * progress opens its store inside its call (streamable-route.ts, opensStoreFirst).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as NewerClient, StreamableHTTPClientTransport as NewerHttpTransport } from '@modelcontextprotocol/client';
import type { Progress } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { writeMemoryStore } from '../cli/memory-store.js';
import { newerRevision } from '../support/mcp-clients.js';
import { baseEnv, repoRoot, serverBin, startHttpServer } from './server-process.js';

let dataDir: string;
let httpDataDir: string;
let streamableDataDir: string;
let closedSessionDataDir: string;
let modernDataDir: string;
let newerSessionDataDir: string;
/** Transactions in the store: replay reports every 10,000, so several reports. */
const puts = 40_000;

/** A data directory whose local tenant's store holds `puts` transactions and no snapshot: its open replays them all. */
async function dataDirWithBigStore(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ioboxx-open-progress-'));
  // Small segments: the scan reports each.
  await writeMemoryStore(path.join(dir, 'tenants', 'local'), puts, 1024 * 1024);
  return dir;
}

beforeAll(async () => {
  [dataDir, httpDataDir, streamableDataDir, closedSessionDataDir, modernDataDir, newerSessionDataDir] = await Promise.all([
    dataDirWithBigStore(), dataDirWithBigStore(), dataDirWithBigStore(), dataDirWithBigStore(), dataDirWithBigStore(), dataDirWithBigStore(),
  ]);
}, 120_000);

afterAll(() => Promise.all([dataDir, httpDataDir, streamableDataDir, closedSessionDataDir, modernDataDir, newerSessionDataDir].map((dir) => rm(dir, { recursive: true, force: true }))));

/** What a first call heard: the log checked, the whole log replayed, progress growing with every notification. */
function expectOpenHeard(heard: readonly Progress[]): void {
  const messages = heard.map((p) => p.message ?? '');
  expect(messages.some((m) => m.startsWith("opening the tenant's store: checking the log segments")), messages.join('\n')).toBe(true);
  expect(messages, messages.join('\n')).toContain(`opening the tenant's store: replaying the log, ${puts} of ${puts}`);
  const values = heard.map((p) => p.progress);
  for (let i = 1; i < values.length; i++) expect(values[i], `progress ${values.join(', ')}`).toBeGreaterThan(values[i - 1]!);
}

async function connect(): Promise<Client> {
  const client = new Client({ name: 'open-progress-test', version: '0.0.0' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env: { ...baseEnv(), IOBOXX_DATA_DIR: dataDir }, cwd: repoRoot, stderr: 'ignore' }));
  return client;
}

const getNote = (client: Client, n: number, onprogress?: (progress: Progress) => void) =>
  client.callTool({ name: 'object_get', arguments: { id: `note-${n}` } }, undefined, onprogress ? { onprogress } : {});

/** object_get of note `n` by a 2.x client, hearing progress in `onprogress`. */
const getNoteNewer = (client: NewerClient, n: number, onprogress: (progress: Progress) => void) =>
  client.callTool({ name: 'object_get', arguments: { id: `note-${n}` } }, { onprogress });

/** A later call (its store open now) gets note `n` and hears no progress; `get` is getNote or getNoteNewer on the test's client. */
async function expectLaterCallHearsNothing(get: (n: number, onprogress: (progress: Progress) => void) => Promise<Record<string, unknown>>, n: number): Promise<void> {
  const later: Progress[] = [];
  const second = await get(n, (progress) => later.push(progress));
  expect(second['structuredContent']).toMatchObject({ id: `note-${n}` });
  expect(later).toEqual([]);
}

/** A first call's answer is note `n`, read after the whole open, which the call heard. */
function expectFirstAnswerAfterOpen(first: Record<string, unknown>, n: number, heard: readonly Progress[]): void {
  expect(first['isError'], JSON.stringify(first['content'])).not.toBe(true);
  expect(first['structuredContent']).toMatchObject({ id: `note-${n}`, attributes: { n } });
  expectOpenHeard(heard);
}

/** The built HTTP server on `dir`: `body` gets its URL; then `client` is closed and the server stopped. */
async function overHttp(dir: string, client: { close(): Promise<unknown> }, body: (url: string) => Promise<void>): Promise<void> {
  const server = await startHttpServer({ IOBOXX_DATA_DIR: dir });
  try {
    await body(server.url);
  } finally {
    await client.close();
    await server.stop();
  }
}

test('the first call, asking for progress, hears the open of its store: the log check and the replay, progress growing; later calls hear nothing', async () => {
  const client = await connect();
  try {
    const heard: Progress[] = [];
    const first = await getNote(client, puts - 1, (progress) => heard.push(progress));
    // The answer is the store's, after the whole replay.
    expectFirstAnswerAfterOpen(first, puts - 1, heard);

    // The store is open now: no open to hear.
    await expectLaterCallHearsNothing((m, onprogress) => getNote(client, m, onprogress), 7);
  } finally {
    await client.close();
  }
}, 120_000);

test('a resource read that opens the store, asking for progress, hears the open too', async () => {
  const client = await connect();
  try {
    const heard: Progress[] = [];
    const read = await client.readResource({ uri: 'memory://objects/note-11' }, { onprogress: (progress) => heard.push(progress) });
    expect(JSON.parse((read.contents[0] as { text: string }).text)).toMatchObject({ id: 'note-11' });
    // Closed by the first test's server, the store opens from its snapshot now, or replays: either is heard.
    const messages = heard.map((p) => p.message ?? '');
    expect(messages.length, 'no progress heard').toBeGreaterThan(0);
    expect(messages.every((m) => m.startsWith("opening the tenant's store: ")), messages.join('\n')).toBe(true);
  } finally {
    await client.close();
  }
}, 120_000);

test('a first call that does not ask for progress gets its answer and no progress notification', async () => {
  const client = await connect();
  const notifications: string[] = [];
  client.fallbackNotificationHandler = async (notification) => {
    notifications.push(notification.method);
  };
  try {
    const first = await getNote(client, 3);
    expect(first.structuredContent).toMatchObject({ id: 'note-3' });
    expect(notifications.filter((method) => method === 'notifications/progress')).toEqual([]);
  } finally {
    await client.close();
  }
}, 120_000);

test('over HTTP+SSE, the first call on a tenant hears the tenant registry open its store', async () => {
  const client = new Client({ name: 'open-progress-test', version: '0.0.0' });
  await overHttp(httpDataDir, client, async (url) => {
    await client.connect(new SSEClientTransport(new URL(`${url}/sse`)));
    const heard: Progress[] = [];
    const first = await getNote(client, puts - 2, (progress) => heard.push(progress));
    expect(first.structuredContent).toMatchObject({ id: `note-${puts - 2}` });
    expectOpenHeard(heard);
  });
}, 120_000);

test('over a 2025-era Streamable HTTP session, the first call on a tenant hears the open on its answer stream; a later call gets its JSON answer alone', async () => {
  const client = new Client({ name: 'open-progress-test', version: '0.0.0' });
  await overHttp(streamableDataDir, client, async (url) => {
    await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)));
    const heard: Progress[] = [];
    // A `_meta` key of the client's own beside the progress token changes nothing.
    const first = await client.callTool(
      { name: 'object_get', arguments: { id: `note-${puts - 3}` }, _meta: { 'com.example/trace': 'abc' } },
      undefined,
      { onprogress: (progress) => heard.push(progress) },
    );
    expectFirstAnswerAfterOpen(first, puts - 3, heard);

    await expectLaterCallHearsNothing((m, onprogress) => getNote(client, m, onprogress), 5);
  });
}, 120_000);

test('a session ended while its call streams the open: the call gets "Session not found", not a stream cut short', async () => {
  const client = new Client({ name: 'open-progress-test', version: '0.0.0' });
  await overHttp(closedSessionDataDir, client, async (url) => {
    const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`));
    await client.connect(transport);
    let firstHeard!: () => void;
    const heardOnce = new Promise<void>((resolve) => (firstHeard = resolve));
    const call = getNote(client, 1, () => firstHeard());
    const outcome = call.then(() => 'answered', (error: unknown) => String(error));
    await heardOnce;
    await transport.terminateSession(); // DELETE: the server closes the session under the call
    expect(await outcome).toMatch(/Session not found/);
  });
}, 120_000);

test('the 2.x client in its default negotiation (a 2025-era session here) hears the open on its first call\'s answer stream too', async () => {
  const client = new NewerClient({ name: 'open-progress-test', version: '0.0.0' });
  await overHttp(newerSessionDataDir, client, async (url) => {
    await client.connect(new NewerHttpTransport(new URL(`${url}/mcp`)));
    expect(client.getNegotiatedProtocolVersion()).toMatch(/^2025-/); // an initialize, a session
    const heard: Progress[] = [];
    const first = await getNoteNewer(client, puts - 5, (progress) => heard.push(progress));
    expectFirstAnswerAfterOpen(first, puts - 5, heard);
  });
}, 120_000);

test('a 2026-era Streamable HTTP call (the 2.x client, pinned to 2026-07-28) that asks for progress hears its store open; connecting did not wait for it', async () => {
  const client = new NewerClient({ name: 'open-progress-test', version: '0.0.0' }, { versionNegotiation: { mode: { pin: newerRevision } } });
  await overHttp(modernDataDir, client, async (url) => {
    // The client's server/discover at connect states capabilities: it does not wait for the store
    // (before, it opened it, and the call then had nothing to hear).
    await client.connect(new NewerHttpTransport(new URL(`${url}/mcp`)));
    const heard: Progress[] = [];
    const first = await getNoteNewer(client, puts - 4, (progress) => heard.push(progress));
    expectFirstAnswerAfterOpen(first, puts - 4, heard);

    await expectLaterCallHearsNothing((m, onprogress) => getNoteNewer(client, m, onprogress), 6);
  });
}, 120_000);
