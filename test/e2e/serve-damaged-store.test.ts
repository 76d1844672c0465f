/**
 * The real built server (`serve --http`, local mode) on a tenant store with a flipped byte in a
 * sealed segment: the caller is refused without a path, and the operator's log line for the failed
 * open names `ioboxx-memory store repair` on the tenant's absolute store directory (quoted for the
 * shell). Pasted as logged while the server runs, it repairs the store (the server's failed open
 * does not hold it), `store verify` passes, and the server's next open of the tenant serves it.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { writeMemoryStore } from '../cli/memory-store.js';
import { connectNewerHttp } from '../support/mcp-clients.js';
import { runPasted } from '../support/pasted-command.js';
import { waitUntil } from '../support/wait-until.js';
import { baseEnv, findLogLine, serverBin, startHttpServer, type ServerProcess } from './server-process.js';

let dataDir: string;
let server: ServerProcess | undefined;

beforeAll(async () => {
  // A space in the path: the logged command must quote it.
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx e2e damaged-'));
});

afterAll(async () => {
  await server?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

interface OpenFailedLine {
  msg: string;
  tenant: string;
  err: { code: string; message: string; hint: string };
}

const openFailedLine = (log: string) => findLogLine<OpenFailedLine>(log, (line) => line.msg === 'tenant store open_failed');

test('the log line of a damaged tenant store names the repair command for its directory; pasted as logged it repairs the store while the server runs', async () => {
  const storeDir = path.join(dataDir, 'tenants', 'local');
  await writeMemoryStore(storeDir, 400, 16 * 1024);
  const segments = (await readdir(path.join(storeDir, 'log'))).filter((f) => f.endsWith('.log')).sort();
  const victim = path.join(storeDir, 'log', segments[1]!);
  const bytes = await readFile(victim);
  bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
  await writeFile(victim, bytes);
  server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });

  // The caller's first call is told to retry later; where the store lives is the operator's, in the log.
  const first = await connectNewerHttp({ url: `${server.url}/mcp` });
  const refusal = await first.callTool('object_get', { id: 'x' }).then(() => undefined, (error: unknown) => error as Error & { status?: number }).finally(() => first.close());
  expect(refusal?.status, String(refusal)).toBe(503);
  const refused = String(refusal);
  expect(refused).toContain('unavailable, retry later');
  expect(refused).not.toContain(dataDir);
  await waitUntil('the open_failed log line', async () => openFailedLine(server!.stderr()) !== undefined);
  const line = openFailedLine(server.stderr())!;
  expect(line.tenant).toBe('local');
  expect(line.err.code).toBe('damaged_store');
  expect(line.err.message).toMatch(new RegExp(`^damaged store: ${victim.replace(/[.]/g, '\\.')} at byte \\d+: `));
  const command = `ioboxx-memory store repair '${storeDir}'`;
  expect(line.err.hint).toContain(`run \`${command}\` while no process has the store open`);

  const env = { ...baseEnv(), IOBOXX_LOG_LEVEL: 'silent' };
  const repaired = await runPasted(command, [process.execPath, serverBin], { cwd: tmpdir(), env });
  expect(repaired.code, repaired.stderr).toBe(0);
  expect(repaired.stdout).toContain(`damage in ${victim} at byte `);
  const verified = await runPasted(`ioboxx-memory store verify '${storeDir}'`, [process.execPath, serverBin], { cwd: tmpdir(), env });
  expect(verified.code, verified.stderr).toBe(0);

  // No restart: the next request opens the repaired store.
  const client = await connectNewerHttp({ url: `${server.url}/mcp` });
  try {
    expect((await client.listTools()).length).toBeGreaterThan(0);
  } finally {
    await client.close();
  }
}, 180_000);
