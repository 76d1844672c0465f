/**
 * Every resource request that reaches data leaves an access-log row, as tool calls do (DESIGN
 * §2.7): a list page (it returns object ids and titles), a read, a subscribe and an unsubscribe,
 * allowed or refused. The real built server over stdio in local mode (which has the audit capability).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectOlderStdio, type McpTestClient } from '../support/mcp-clients.js';
import { waitUntil } from '../support/wait-until.js';
import { baseEnv, repoRoot, serverBin } from './server-process.js';

let dataDir: string;
let client: McpTestClient;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-resource-audit-'));
  client = await connectOlderStdio({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env: { ...baseEnv(), IOBOXX_DATA_DIR: dataDir }, cwd: repoRoot, stderr: 'ignore' });
});
afterAll(async () => {
  await client?.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('resources/list, read, subscribe and unsubscribe each leave an access-log row with their target and outcome', async () => {
  const put = await client.callTool('object_put', { id: 'audited', type: 'note', attributes: {} });
  expect(put.isError).not.toBe(true);
  await client.listResources();
  await client.readResource('memory://objects/audited');
  await expect(client.readResource('memory://objects/missing')).rejects.toThrow();
  const subscription = await client.watchResource('memory://objects/audited');
  await subscription.close();
  type Row = { action: string; target: string; outcome: string };
  let rows: Row[] = [];
  await waitUntil('the resource requests in the access log', async () => {
    const listed = await client.callTool('access_log_list', { limit: 50 });
    rows = (listed.structuredContent as { entries: Row[] }).entries.filter((row) => row.action.startsWith('resources/'));
    return rows.length >= 5;
  });
  expect(rows.map((row) => [row.action, row.target, row.outcome]).reverse()).toEqual([
    ['resources/list', '-', 'ok'],
    ['resources/read', 'memory://objects/audited', 'ok'],
    ['resources/read', 'memory://objects/missing', 'not_found'],
    ['resources/subscribe', 'memory://objects/audited', 'ok'],
    ['resources/unsubscribe', 'memory://objects/audited', 'ok'],
  ]);
}, 120_000);
