/**
 * run_history_summary over stdio with the embedded database: the control plane that holds run
 * history runs under `serve --http` only, so the tool says so and where to ask, instead of
 * "not connected yet; retry shortly" (a retry that could never succeed). The real built server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectOlderStdio, toolErrorOf } from '../support/mcp-clients.js';
import { baseEnv, repoRoot, serverBin } from './server-process.js';

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-stdio-run-history-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

test('over stdio with the embedded database: unavailable saying a retry cannot help, naming serve --http and DATABASE_URL', async () => {
  const client = await connectOlderStdio({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env: { ...baseEnv(), IOBOXX_DATA_DIR: dataDir }, cwd: repoRoot, stderr: 'ignore' });
  try {
    const error = toolErrorOf(await client.callTool('run_history_summary', {}));
    expect(error).toMatchObject({ code: 'unavailable' });
    expect(error?.message).toContain('retrying here cannot help');
    expect(error?.hint).toContain('serve --http');
    expect(error?.hint).toContain('DATABASE_URL');
  } finally {
    await client.close();
  }
}, 120_000);
