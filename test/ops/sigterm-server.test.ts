/**
 * SIGTERM during a write burst against the real server process: it stops accepting (503 +
 * Retry-After, sessions included), answers every call it admitted, closes its stores and
 * exits 0; after a restart every acknowledged write is there, and so is its access-log row
 * (the rows of the last answered calls are appended before the stores close), and no write
 * that committed went unanswered.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { localTenantDefault } from '../../server/auth/local-principal.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';
import { openTenantMemory } from '../../tools/index.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { listSnapshots } from '../../storage/snapshot/reader.js';
import { connectNewerHttp, connectOlderHttp, connectOlderSse, toolErrorOf } from '../support/mcp-clients.js';
import { cliNodeArgs } from '../support/cli-entry.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-sigterm-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

function startServer(env: Record<string, string> = {}): { child: ChildProcessWithoutNullStreams; url: Promise<string>; logged: string[] } {
  const child = spawn(process.execPath, [...cliNodeArgs, 'serve', '--http'], {
    cwd: root,
    env: { ...process.env, IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'info', ...env },
  });
  const logged: string[] = [];
  const url = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stderr }).on('line', (line) => {
      const event = JSON.parse(line) as { msg?: string; url?: string };
      if (event.msg !== undefined) logged.push(event.msg);
      if (event.msg === 'http server listening' && event.url !== undefined) resolve(event.url);
    });
    child.on('close', (code) => reject(new Error(`server exited (${code}) before listening`)));
  });
  return { child, url, logged };
}

describe('graceful shutdown of the real server', () => {
  // Each era's HTTP transport: sessionless (2026), a sessionful Streamable HTTP session and a
  // legacy SSE stream (2025 and older), whose calls run inside a session the shutdown closes.
  test.each(['newer', 'older', 'sse'] as const)('SIGTERM during a write burst (%s client): exit 0, every write that committed was answered', async (era) => {
    const first = startServer();
    const base = await first.url;
    const client = era === 'newer' ? await connectNewerHttp({ url: `${base}/mcp` }) : era === 'older' ? await connectOlderHttp({ url: `${base}/mcp` }) : await connectOlderSse({ url: `${base}/sse` });
    const acknowledged: string[] = [];
    const unanswered: string[] = [];
    const refusals: string[] = [];
    let stop = false;
    const exited = new Promise<number | null>((resolve) => first.child.on('close', resolve));
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const id = `${era}-w${w}-${i}`;
        try {
          const result = await client.callTool('object_put', { id, type: 'burst', attributes: { i } });
          const error = toolErrorOf(result);
          if (error !== undefined) {
            unanswered.push(id);
            refusals.push(error.code);
            break;
          }
          acknowledged.push((result.structuredContent as { id: string }).id);
          if (acknowledged.length === 40) first.child.kill('SIGTERM');
        } catch (error) {
          unanswered.push(id); // refused (503 shutting down) or the connection closed: not acknowledged
          refusals.push(String(error));
          break;
        }
      }
    });
    const code = await exited;
    stop = true;
    await Promise.allSettled(writers);
    await client.close().catch(() => undefined);
    expect(code).toBe(0);
    expect(acknowledged.length).toBeGreaterThanOrEqual(40);
    // Refused calls were told why (not "Session not found": the session was there, the server going).
    expect(refusals.filter((r) => /Session not found/.test(r)), 'calls answered 404 while the session closed under them').toEqual([]);

    // Every acknowledged call was recorded in the tenant's access log before the process ended,
    // and no call that was not answered committed: the drain waited for each admitted call's answer.
    const memory = await openTenantMemory(tenantDir(dataDir, localTenantDefault), localTenantDefault);
    try {
      const recorded = new Set(await memory.store.read((view) => [...view.table('access_log').scan()]
        .filter((row) => row['target'] === 'object_put' && row['outcome'] === 'ok')
        .flatMap((row) => row['object_ids'] as string[])));
      expect(acknowledged.filter((id) => !recorded.has(id)), 'acknowledged calls without an access row').toEqual([]);
      const stored = await memory.store.read((view) => unanswered.filter((id) => view.table('objects').get([id]) !== undefined));
      expect(stored, 'calls that committed but were never answered').toEqual([]);
    } finally {
      await memory.close();
    }

    const second = startServer();
    const reader = await connectNewerHttp({ url: `${await second.url}/mcp` });
    try {
      for (const id of acknowledged) {
        const got = await reader.callTool('object_get', { id });
        expect(toolErrorOf(got), `acknowledged object ${id} lost`).toBeUndefined();
      }
    } finally {
      await reader.close();
      const done = new Promise((resolve) => second.child.on('close', resolve));
      second.child.kill('SIGTERM');
      await done;
    }
  }, 120_000);

  test('IOBOXX_TENANT_IDLE_CLOSE_MS: an unused tenant store closes after it', async () => {
    const server = startServer({ IOBOXX_TENANT_IDLE_CLOSE_MS: '300' });
    const exited = new Promise<number | null>((resolve) => server.child.on('close', resolve));
    const client = await connectNewerHttp({ url: `${await server.url}/mcp` });
    try {
      expect(toolErrorOf(await client.callTool('object_put', { id: 'idle-1', type: 'note', attributes: {} }))).toBeUndefined();
      await vi.waitFor(() => expect(server.logged).toContain('tenant store closed'), { timeout: 10_000, interval: 100 });
    } finally {
      await client.close();
      server.child.kill('SIGTERM');
      await exited;
    }
  });

  test('IOBOXX_SNAPSHOT_EVERY_TX: a serving tenant store snapshots on its own as writes come in', async () => {
    const snapshotOffsets = async () => (await listSnapshots(tenantDir(dataDir, localTenantDefault), nodeFileLayer)).filter((r) => r.manifest).map((r) => r.offset);
    const server = startServer({ IOBOXX_SNAPSHOT_EVERY_TX: '20', IOBOXX_SNAPSHOT_EVERY_MS: '0' });
    const exited = new Promise<number | null>((resolve) => server.child.on('close', resolve));
    const client = await connectNewerHttp({ url: `${await server.url}/mcp` });
    try {
      let last = -1;
      for (let i = 0; i < 30; i++) {
        const result = await client.callTool('object_put', { id: `snap-${i}`, type: 'note', attributes: { i } });
        expect(toolErrorOf(result)).toBeUndefined();
        last = (result.structuredContent as { offset: number }).offset;
      }
      // Twenty transactions after the open, the store took a snapshot while serving (not at close).
      await vi.waitFor(async () => expect(Math.max(-1, ...(await snapshotOffsets()))).toBeGreaterThan(last - 20), { timeout: 10_000, interval: 100 });
    } finally {
      await client.close();
      server.child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('a signal as the server starts', () => {
  // The test sends SIGINT the moment "http server listening" is read, as a person pressing Ctrl-C
  // at that line would. Before the handlers were installed ahead of the listener, this found
  // Node's default handler: the process died of SIGINT with no shutdown at all (10 of 10 runs).
  test('SIGINT right after "http server listening": the start finishes, then one graceful shutdown, exit 0', async () => {
    const ownDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-sigint-start-'));
    try {
      const server = startServer({ IOBOXX_DATA_DIR: ownDir });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => server.child.on('close', (code, signal) => resolve({ code, signal })));
      await server.url;
      server.child.kill('SIGINT');
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(server.logged).toContain('shutdown complete');
    } finally {
      await rm(ownDir, { recursive: true, force: true });
    }
  }, 60_000);
});
