/**
 * OPERATIONS, "A tenant's store that vanished": the store's directory is deleted while the built
 * server holds it open and idle, the operator restores a backup (`restore BACKUP_DIR local`), then
 * restarts the server. The old store's closing snapshot and checkpoint must not land in the restored
 * store: the next server serves exactly the backup's objects and history.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { connectOlderHttp, type McpTestClient } from '../support/mcp-clients.js';
import { runProcess } from '../support/run-process.js';
import { baseEnv, serverBin, startHttpServer, type ServerProcess } from './server-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-restore-vanished-'));
const dataDir = path.join(work, 'data');
const servers: ServerProcess[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
  rmSync(work, { recursive: true, force: true });
});

function operator(...args: string[]) {
  return runProcess(process.execPath, [serverBin, ...args, '--json', '--data-dir', dataDir], { env: { ...baseEnv(), IOBOXX_LOG_LEVEL: 'silent' } });
}

async function put(client: McpTestClient, id: string): Promise<void> {
  const r = await client.callTool('object_put', { id, type: 'note', attributes: { id } });
  expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
}

test('a store deleted under an idle server, restored from a backup, is served with the backup\'s state after the server restarts', async () => {
  const first = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  servers.push(first);
  const writer = await connectOlderHttp({ url: `${first.url}/mcp` });
  for (let i = 0; i < 20; i++) await put(writer, `kept-${i}`);
  const backupDir = path.join(work, 'backup');
  const taken = await operator('backup', 'local', backupDir);
  expect(taken.code, taken.stderr).toBe(0);
  for (let i = 0; i < 20; i++) await put(writer, `lost-${i}`);
  await writer.close();

  rmSync(path.join(dataDir, 'tenants', 'local'), { recursive: true, force: true });
  const restored = await operator('restore', backupDir, 'local');
  expect(restored.code, restored.stderr).toBe(0);
  expect(await first.stop(), 'the first server did not stop cleanly').toBe(0);

  const second = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  servers.push(second);
  const reader = await connectOlderHttp({ url: `${second.url}/mcp` });
  try {
    const kept = await reader.callTool('object_get', { id: 'kept-19' });
    expect(kept.isError, `the restored store is not served: ${JSON.stringify(kept.content)}`).toBeFalsy();
    const lost = await reader.callTool('object_get', { id: 'lost-0' });
    expect(lost.isError, 'an object written after the backup is served from the restored store').toBe(true);
    const history = await reader.callTool('object_history', { id: 'kept-0' });
    expect((history.structuredContent as { versions: unknown[] }).versions).toHaveLength(1);
  } finally {
    await reader.close();
  }
}, 180_000);
