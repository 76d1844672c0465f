/**
 * run_history_summary over stdio with the embedded database: the control plane that holds run
 * history runs under `serve --http`, so the tool says so and where to ask, instead of
 * "not connected yet; retry shortly" (a retry that could never succeed); once
 * stdioOutboxDrainRowsMin finished runs wait in the outbox, the stdio server starts the embedded
 * database itself and drains them. The real built server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { stdioOutboxDrainRowsMin } from '../../server/main-wiring.js';
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

test('over stdio with the embedded database: once the run outbox holds stdioOutboxDrainRowsMin finished runs, the server drains them into run history', async () => {
  const ownDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-stdio-outbox-drain-'));
  const client = await connectOlderStdio({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env: { ...baseEnv(), IOBOXX_DATA_DIR: ownDir }, cwd: repoRoot, stderr: 'ignore' });
  try {
    const inFlight = 25;
    for (let done = 0; done < stdioOutboxDrainRowsMin; done += inFlight) {
      await Promise.all(Array.from({ length: inFlight }, async () => {
        const started = await client.callTool('session_start', { agent: 'drainer' });
        const session = (started.structuredContent as { session: string }).session;
        const ended = await client.callTool('session_end', { session, outcome: 'completed' });
        expect(ended.isError, JSON.stringify(ended.content)).not.toBe(true);
      }));
    }
    // The next calls find the outbox at the bound and start the database; each asks until the
    // runs are in run history (the embedded database takes seconds to start).
    let runs = 0;
    let last: unknown;
    for (let attempt = 0; attempt < 240 && runs < stdioOutboxDrainRowsMin; attempt++) {
      const result = await client.callTool('run_history_summary', {});
      last = toolErrorOf(result) ?? result.structuredContent;
      const groups = (result.structuredContent as { groups?: Array<{ run: string; n: number }> } | undefined)?.groups ?? [];
      runs = groups.filter((g) => g.run === 'session:drainer').reduce((sum, g) => sum + g.n, 0);
      if (runs < stdioOutboxDrainRowsMin) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(runs, JSON.stringify(last)).toBe(stdioOutboxDrainRowsMin);
  } finally {
    await client.close();
    await rm(ownDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}, 240_000);
