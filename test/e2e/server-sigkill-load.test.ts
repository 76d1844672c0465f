/**
 * The built server killed under load: eight SDK clients write over Streamable HTTP, each its own
 * sequence of `object_put` calls with idempotency keys, until the server gets SIGKILL at a random
 * moment; a new process on the same data directory then serves the next round. Two kills.
 * What the clients were told must hold (DESIGN §2.1, §2.3): every acknowledged put is served with
 * the id and offset it was answered with, and a put whose answer the kill cut off, retried with
 * its key, is applied exactly once (its first run committed or not). Nothing else is there.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { connectNewerHttp, connectOlderHttp, toolErrorOf, type McpTestClient } from '../support/mcp-clients.js';
import { startHttpServer, type ServerProcess } from './server-process.js';

const writersCount = 8;
const roundsCount = 2;
/** The kill comes this long after the writers started, at random within the range. */
const killAfterMsMin = 300;
const killAfterMsMax = 1_500;

interface Written {
  readonly id: string;
  readonly offset: number;
}

interface Writer {
  readonly index: number;
  /** Its next put's sequence number: the key is `w<index>-<n>`, the attributes { w, n }. */
  next: number;
  /** The put whose answer a kill cut off, to retry with its key on the next server. */
  pending: number | undefined;
  readonly acknowledged: Map<number, Written>;
}

const dataDirs: string[] = [];
const running: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(running.map((server) => server.kill()));
  await Promise.all(dataDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function put(client: McpTestClient, writer: Writer, n: number): Promise<Written> {
  const result = await client.callTool('object_put', { type: 'note', attributes: { w: writer.index, n }, idempotency_key: `w${writer.index}-${n}` });
  const error = toolErrorOf(result);
  if (error !== undefined || result.isError === true) throw new Error(`object_put refused: ${JSON.stringify(error ?? result.content)}`);
  const { id, offset } = result.structuredContent as { id: string; offset: number };
  return { id, offset };
}

/** Puts until the server dies under it; the put in flight then is the writer's pending one. */
async function writeUntilKilled(client: McpTestClient, writer: Writer, killed: () => boolean): Promise<void> {
  for (;;) {
    const n = writer.next;
    writer.pending = n;
    try {
      writer.acknowledged.set(n, await put(client, writer, n));
    } catch (error) {
      if (killed()) return; // its answer was cut off: it may or may not have committed
      throw error;
    }
    writer.pending = undefined;
    writer.next = n + 1;
  }
}

async function allNotes(client: McpTestClient): Promise<Array<{ id: string; version: number; attributes: { w: number; n: number } }>> {
  const notes: Array<{ id: string; version: number; attributes: { w: number; n: number } }> = [];
  let cursor: string | undefined;
  do {
    const result = await client.callTool('object_find', { type: 'note', limit: 200, ...(cursor !== undefined && { cursor }) });
    if (result.isError === true) throw new Error(`object_find refused: ${JSON.stringify(toolErrorOf(result) ?? result.content)}`);
    const page = result.structuredContent as { objects: typeof notes; next_cursor?: string };
    notes.push(...page.objects);
    cursor = page.next_cursor;
  } while (cursor !== undefined);
  return notes;
}

describe('the built server killed under load', () => {
  test(`${roundsCount} SIGKILLs amid ${writersCount} writers: every acknowledged put is served as answered, and a cut-off put retried with its key is applied once`, async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-sigkill-load-'));
    dataDirs.push(dataDir);
    const writers: Writer[] = Array.from({ length: writersCount }, (_, index) => ({ index, next: 0, pending: undefined, acknowledged: new Map() }));
    for (let round = 0; round <= roundsCount; round++) {
      const server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
      running.push(server);
      const clients = await Promise.all(writers.map((writer) => (writer.index % 2 === 0 ? connectNewerHttp : connectOlderHttp)({ url: `${server.url}/mcp` })));
      // The puts the last kill cut off, retried with their keys: applied once whether or not they committed.
      await Promise.all(writers.map(async (writer, i) => {
        if (writer.pending === undefined) return;
        writer.acknowledged.set(writer.pending, await put(clients[i]!, writer, writer.pending));
        writer.next = writer.pending + 1;
        writer.pending = undefined;
      }));
      // Everything acknowledged so far is served, as answered, and nothing else is there.
      const notes = await allNotes(clients[0]!);
      const expected = writers.flatMap((writer) => [...writer.acknowledged].map(([n, written]) => ({ id: written.id, w: writer.index, n })));
      expect(notes.map((note) => ({ id: note.id, w: note.attributes.w, n: note.attributes.n })).sort(byId)).toEqual(expected.sort(byId));
      for (const note of notes) expect(note.version).toBe(1);
      // Acknowledged offsets are the puts' own: a retry of an acknowledged key answers the same.
      const writer = writers.find((w) => w.acknowledged.size > 0);
      if (writer !== undefined) {
        const [n, written] = [...writer.acknowledged].at(-1)!;
        expect(await put(clients[writer.index]!, writer, n)).toEqual(written);
      }
      if (round === roundsCount) {
        await Promise.all(clients.map((client) => client.close()));
        expect(await server.stop()).toBe(0);
        break;
      }
      let killed = false;
      const writing = writers.map((w, i) => writeUntilKilled(clients[i]!, w, () => killed));
      await new Promise((resolve) => setTimeout(resolve, killAfterMsMin + Math.random() * (killAfterMsMax - killAfterMsMin)));
      killed = true;
      await server.kill();
      await Promise.all(writing);
      await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
    }
    const acknowledgedTotal = writers.reduce((sum, w) => sum + w.acknowledged.size, 0);
    expect(acknowledgedTotal).toBeGreaterThan(roundsCount * writersCount); // the kills landed amid writing
  }, 240_000);
});

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
