/**
 * PROTOCOL.md "Resume" across a restore, on the real built server: a WebSocket consumer applied
 * transactions up to X; the data directory is lost and the operator restores an older backup
 * (ending at E < X); the restored store's new transactions take the offsets E+1..X again with other
 * content. The consumer reconnecting with `after: X` and the history it was given must get a fresh
 * result of the new state (`reset`), not the replaced history plus what follows X. With the
 * restored store's own history it resumes exactly; with the old one at an offset up to E too.
 * (Without `history` the server cannot tell, and resumes: the reason the id exists.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { connectOlderHttp, type McpTestClient } from '../support/mcp-clients.js';
import { runProcess } from '../support/run-process.js';
import { TestClient, type Message } from '../ws/ws-test-client.js';
import { baseEnv, serverBin, startHttpServer, type ServerProcess } from './server-process.js';

// Under the run's TMPDIR (test/support/tmp-root.ts), removed when the run ends.
const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-ws-restore-'));
const dataDir = path.join(work, 'data');
const servers: ServerProcess[] = [];
afterAll(() => Promise.all(servers.map((s) => s.stop())));

function operator(...args: string[]) {
  return runProcess(process.execPath, [serverBin, ...args, '--json', '--data-dir', dataDir], { env: { ...baseEnv(), IOBOXX_LOG_LEVEL: 'silent' } });
}

async function serve(): Promise<{ server: ServerProcess; writer: McpTestClient; wsUrl: string }> {
  const server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  servers.push(server);
  const writer = await connectOlderHttp({ url: `${server.url}/mcp` });
  return { server, writer, wsUrl: `${server.url.replace('http', 'ws')}/ws` };
}

async function put(writer: McpTestClient, id: string): Promise<number> {
  const r = await writer.callTool('object_put', { id, type: 'note', attributes: { id } });
  expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
  return (r.structuredContent as { offset: number }).offset;
}

const notes = [{ id: 'notes', table: 'objects', where: { type: 'note' } }];

/** Connects and sends one subscribe; the answer, and the client (to read the tx messages after it). */
async function subscribe(wsUrl: string, resume: { after?: number; history?: string } = {}): Promise<{ client: TestClient; subscribed: Message }> {
  const client = await TestClient.connect(wsUrl);
  client.send({ type: 'subscribe', queries: notes, ...resume });
  const subscribed = await client.next((m) => m.type === 'subscribed' || m.type === 'error');
  expect(subscribed.type, JSON.stringify(subscribed)).toBe('subscribed');
  return { client, subscribed };
}

function idsOf(subscribed: Message): string[] {
  return (subscribed.queries[0].rows as { id: string }[]).map((r) => r.id).sort();
}

test('a consumer of the lost history resuming past the restore\'s fork gets a fresh result of the restored store; one of its own history resumes exactly', async () => {
  const first = await serve();
  const consumer = await subscribe(first.wsUrl);
  const oldHistory = consumer.subscribed.history as string;
  expect(oldHistory).toMatch(/^[0-9a-f]{32}$/);
  for (let i = 0; i < 3; i++) await put(first.writer, `kept-${i}`);
  const backup = path.join(work, 'backup');
  const taken = await operator('backup', 'local', backup);
  expect(taken.code, taken.stderr).toBe(0);
  const forkOffset = (JSON.parse(taken.stdout) as { endOffset: number }).endOffset;
  let applied = -1;
  for (let i = 0; i < 4; i++) applied = await put(first.writer, `lost-${i}`);
  // The consumer applied every transaction up to `applied` (X), past the backup's end (E).
  const lastTx = await consumer.client.next((m) => m.type === 'tx' && m.offset === applied);
  expect(lastTx.queries[0].inserted[0].id).toBe('lost-3');
  consumer.client.close();
  await first.writer.close();
  expect(await first.server.stop()).toBe(0);

  // Disaster: the data directory's store is lost; the newest backup is older than what was served.
  rmSync(path.join(dataDir, 'tenants', 'local'), { recursive: true, force: true });
  const restored = await operator('restore', backup, 'local');
  expect(restored.code, restored.stderr).toBe(0);
  const restoredHistory = (JSON.parse(restored.stdout) as { history: { id: string; ancestors: unknown[] } }).history;
  expect(restoredHistory.ancestors).toEqual([{ id: oldHistory, forkOffset }]);

  const second = await serve();
  // The store passes X (its own audit transactions take offsets too): offsets reused.
  const newIds: string[] = [];
  let offset = forkOffset;
  while (offset <= applied) {
    newIds.push(`new-${newIds.length}`);
    offset = await put(second.writer, newIds.at(-1)!);
  }

  // The old history at X: the offsets after the fork name other transactions. A fresh result of the new state.
  const reset = await subscribe(second.wsUrl, { after: applied, history: oldHistory });
  expect(reset.subscribed).toMatchObject({ resumed: false, reset: true, history: restoredHistory.id });
  expect(reset.subscribed.offset).toBeGreaterThanOrEqual(offset);
  expect(idsOf(reset.subscribed)).toEqual(['kept-0', 'kept-1', 'kept-2', ...newIds].sort());
  reset.client.close();

  // Without a history the server cannot tell (today's behaviour, kept): it resumes, and the consumer keeps lost-* it should not.
  const blind = await subscribe(second.wsUrl, { after: applied });
  expect(blind.subscribed).toMatchObject({ resumed: true, offset: applied });
  blind.client.close();

  // The old history at an offset up to the fork: those transactions are shared, so it resumes, exactly.
  const shared = await subscribe(second.wsUrl, { after: forkOffset, history: oldHistory });
  expect(shared.subscribed).toMatchObject({ resumed: true, reset: false, offset: forkOffset, history: restoredHistory.id });
  const sharedTx = await shared.client.next((m) => m.type === 'tx' && m.offset === offset);
  expect(sharedTx.queries[0].inserted[0].id).toBe(newIds.at(-1));
  shared.client.close();

  // The restored store's own history resumes exactly: the tx messages after its offset, no more, no fewer.
  const current = await subscribe(second.wsUrl);
  const at = current.subscribed.offset as number;
  current.client.close();
  const written: number[] = [];
  for (let i = 0; i < 3; i++) written.push(await put(second.writer, `after-${i}`));
  const resumed = await subscribe(second.wsUrl, { after: at, history: restoredHistory.id });
  expect(resumed.subscribed).toMatchObject({ resumed: true, reset: false, offset: at, history: restoredHistory.id });
  const txs: Message[] = [];
  while (txs.length < written.length) txs.push(await resumed.client.nextOfType('tx'));
  expect(txs.map((m) => m.offset)).toEqual(written);
  expect(txs.map((m) => m.queries[0].inserted[0].id)).toEqual(['after-0', 'after-1', 'after-2']);
  resumed.client.close();
  await second.writer.close();
}, 120_000);
