/**
 * A tenant store the server cannot open (here: its LOCK held by another live process, as a
 * second server on the same data directory would hold it) is a retryable refusal the caller can
 * read — HTTP 503 + Retry-After, a stdio tool error `unavailable` — never a bare 500 or
 * `internal`, and the server keeps serving. A data directory the process cannot use fails the
 * start with exit 1 naming it. The real built server (`bin/ioboxx-memory.js`).
 */
import { spawnSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { localTenantDefault } from '../../server/auth/local-principal.js';
import { knownTenantsRoot } from '../../server/tenants/known-tenants.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';
import { connectOlderStdio, toolErrorOf } from '../support/mcp-clients.js';
import { post2026 } from '../support/raw-http-session.js';
import { baseEnv, repoRoot, serverBin, startHttpServer } from './server-process.js';

/**
 * A tools/call over plain HTTP, so the status and headers of a refusal are seen as a client gets
 * them; `meta` joins the per-request envelope.
 */
const callObjectGet = (url: string, meta?: Record<string, unknown>): Promise<Response> =>
  post2026(`${url}/mcp`, 1, 'tools/call', { name: 'object_get', arguments: { id: 'x' } }, { meta });

/** The JSON-RPC answer of a POST answered as one JSON body or as an SSE stream (its event with an id). */
async function answerOf(answer: Response): Promise<{ result?: Record<string, unknown>; error?: { message: string } }> {
  const text = await answer.text();
  if (!(answer.headers.get('content-type') ?? '').startsWith('text/event-stream')) return JSON.parse(text);
  const messages = text.split('\n').filter((line) => line.startsWith('data: ') && line.length > 6).map((line) => JSON.parse(line.slice(6)) as { id?: unknown });
  return messages.find((m) => m.id !== undefined) as { result?: Record<string, unknown> };
}

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-open-refusal-'));
  const dir = tenantDir(dataDir, localTenantDefault);
  await mkdir(path.join(dir, 'log'), { recursive: true });
  await writeFile(path.join(dir, 'LOCK'), String(process.pid)); // this test process is alive: the lock is held
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

describe('a tenant store that cannot be opened', () => {
  test('over HTTP: 503 with Retry-After and a message naming the cause (another process holds the store), not a 500', async () => {
    const server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
    try {
      const answer = await callObjectGet(server.url);
      expect(answer.status).toBe(503);
      expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
      const { error } = (await answer.json()) as { error: { message: string; data?: { code?: string; hint?: string } } };
      expect(error.message).toContain("the tenant's store is open in another ioboxx-memory process");
      // The stable code and the hint, as a tool error carries them (before: the message alone).
      expect(error.data).toMatchObject({ code: 'unavailable', hint: expect.stringContaining('stop the other server on this data directory') });
      // The operator's log says why, naming the holder.
      expect(server.stderr()).toContain(`is open in process ${process.pid}`);
      // The server still serves what needs no store.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  }, 120_000);

  test('over HTTP, a 2026-era call that asks for progress (its store opens inside the call) is a tool error unavailable naming the cause; a connect\'s server/discover is answered', async () => {
    const server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
    try {
      const discover = await post2026(`${server.url}/mcp`, 1, 'server/discover', {});
      expect(discover.status).toBe(200);
      expect(await answerOf(discover)).toMatchObject({ result: { capabilities: expect.any(Object) } });

      const answer = await callObjectGet(server.url, { progressToken: 'p1' });
      expect(answer.status).toBe(200);
      const { result } = await answerOf(answer);
      expect(result, JSON.stringify(result)).toMatchObject({ isError: true });
      const { error } = JSON.parse((result!['content'] as { text: string }[])[0]!.text) as { error: Record<string, string> };
      expect(error).toMatchObject({ code: 'unavailable', hint: expect.stringContaining('stop the other server on this data directory') });
      expect(error['message']).toContain("the tenant's store is open in another ioboxx-memory process");
    } finally {
      await server.stop();
    }
  }, 120_000);

  test('over stdio: the tool call is unavailable saying another process holds the store, with a hint, not internal', async () => {
    const client = await connectOlderStdio({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env: { ...baseEnv(), IOBOXX_DATA_DIR: dataDir }, cwd: repoRoot, stderr: 'ignore' });
    try {
      const error = toolErrorOf(await client.callTool('object_get', { id: 'x' }));
      expect(error).toMatchObject({ code: 'unavailable' });
      expect(error?.message).toContain("the tenant's store is open in another ioboxx-memory process");
      expect(error?.hint).toContain('IOBOXX_DATA_DIR');
    } finally {
      await client.close();
    }
  }, 120_000);

  test('a data directory the process cannot use: exit 1 at start, naming it', () => {
    const notADir = path.join(dataDir, 'LOCK-file-as-data-dir');
    spawnSync('touch', [notADir]);
    const run = spawnSync(process.execPath, [serverBin, 'serve', '--stdio'], { cwd: repoRoot, env: { ...baseEnv(), IOBOXX_DATA_DIR: notADir }, input: '', encoding: 'utf8', timeout: 60_000 });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`the data directory ${notADir} cannot be used`);
    expect(run.stdout).toBe(''); // stdout carries only MCP messages
  }, 90_000);
});

describe('a known tenant whose store has vanished (its directory deleted while the server was stopped)', () => {
  let vanishedDataDir: string;
  beforeAll(async () => {
    vanishedDataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-vanished-'));
    // The record a server left when it first opened the tenant; the tenant's directory is gone.
    await mkdir(knownTenantsRoot(vanishedDataDir), { recursive: true });
    await writeFile(path.join(knownTenantsRoot(vanishedDataDir), localTenantDefault), '');
  });
  afterAll(() => rm(vanishedDataDir, { recursive: true, force: true }));
  const storeCreated = () => lstat(tenantDir(vanishedDataDir, localTenantDefault)).then(() => true, () => false);

  test('over HTTP: 503 saying the store is missing, and no empty store is created', async () => {
    const server = await startHttpServer({ IOBOXX_DATA_DIR: vanishedDataDir });
    try {
      const answer = await callObjectGet(server.url);
      expect(answer.status).toBe(503);
      expect(((await answer.json()) as { error: { message: string } }).error.message).toContain(`the store of tenant ${localTenantDefault} is missing`);
      expect(server.stderr()).toContain('has vanished');
      expect(await storeCreated()).toBe(false);
    } finally {
      await server.stop();
    }
  }, 120_000);

  test('over stdio: a store written, then deleted while stopped, is refused unavailable with a hint naming restore and `tenants forget`; nothing is created', async () => {
    await rm(knownTenantsRoot(vanishedDataDir), { recursive: true });
    const stdio = () => connectOlderStdio({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env: { ...baseEnv(), IOBOXX_DATA_DIR: vanishedDataDir }, cwd: repoRoot, stderr: 'ignore' });
    const first = await stdio();
    try {
      expect(toolErrorOf(await first.callTool('object_put', { id: 'kept', type: 'note', attributes: {} }))).toBeUndefined();
    } finally {
      await first.close();
    }
    await rm(tenantDir(vanishedDataDir, localTenantDefault), { recursive: true });
    const client = await connectOlderStdio({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env: { ...baseEnv(), IOBOXX_DATA_DIR: vanishedDataDir }, cwd: repoRoot, stderr: 'ignore' });
    try {
      const error = toolErrorOf(await client.callTool('object_get', { id: 'x' }));
      expect(error).toMatchObject({ code: 'unavailable' });
      expect(error?.message).toContain('is missing from the data directory');
      expect(error?.hint).toContain('ioboxx-memory restore');
      expect(error?.hint).toContain(`tenants forget ${localTenantDefault} --yes`);
      expect(await storeCreated()).toBe(false);
    } finally {
      await client.close();
    }
  }, 120_000);

  test('after `tenants forget local --yes` the tenant starts over with an empty store', async () => {
    const forget = spawnSync(process.execPath, [serverBin, 'tenants', 'forget', localTenantDefault, '--yes', '--data-dir', vanishedDataDir], { cwd: repoRoot, env: baseEnv(), encoding: 'utf8', timeout: 60_000 });
    expect(forget.status, forget.stderr).toBe(0);
    const client = await connectOlderStdio({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env: { ...baseEnv(), IOBOXX_DATA_DIR: vanishedDataDir }, cwd: repoRoot, stderr: 'ignore' });
    try {
      expect(toolErrorOf(await client.callTool('object_get', { id: 'kept' }))).toMatchObject({ code: 'not_found' });
      expect(await storeCreated()).toBe(true);
    } finally {
      await client.close();
    }
  }, 120_000);
});
