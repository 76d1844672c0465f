/**
 * The audit benchmark's lean stdio client (bench/audit-stdio-client.ts) against the real built
 * server over stdio: many calls in flight on one connection, each answer matched to its call;
 * and a server that writes anything but JSON-RPC on stdout fails the client with what it wrote.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LeanMcpStdioClient } from '../../bench/audit-stdio-client.js';
import { baseEnv, serverBin } from './server-process.js';
import { childExit } from '../support/child-exit.js';

let dataDir: string;
let server: ChildProcess;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-stdio-client-'));
  server = spawn(process.execPath, [serverBin, 'serve', '--stdio'], { env: { ...baseEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_LOG_LEVEL: 'warn' }, stdio: ['pipe', 'pipe', 'ignore'] });
});

afterAll(async () => {
  server.stdin!.end();
  await childExit(server);
  await rm(dataDir, { recursive: true, force: true });
});

describe('the lean stdio client of the audit benchmark', () => {
  test('calls in flight together on one connection each get their own answer', async () => {
    const client = await LeanMcpStdioClient.connect(server.stdout!, server.stdin!);
    const ids = Array.from({ length: 32 }, (_, i) => `obj-${i}`);
    await Promise.all(ids.map((id, i) => client.callTool('object_put', { id, type: 'note', attributes: { i } })));
    const got = await Promise.all(ids.map((id) => client.callTool('object_get', { id })));
    expect(got.map((r) => r.structuredContent)).toEqual(ids.map((id, i) => ({ id, type: 'note', attributes: { i }, version: 1 })));
    const missing = await client.callTool('object_get', { id: 'no-such-object' });
    expect(missing.isError).toBe(true);
  }, 60_000);

  test('a line on stdout that is not JSON-RPC fails the client, naming it', async () => {
    const fake = spawn(process.execPath, ['-e', 'process.stdout.write("hello from a log line\\n"); setTimeout(() => {}, 5000)'], { stdio: ['pipe', 'pipe', 'ignore'] });
    try {
      await expect(LeanMcpStdioClient.connect(fake.stdout!, fake.stdin!)).rejects.toThrow(/not JSON on the server's stdout: hello from a log line/);
    } finally {
      fake.kill();
    }
  });
});
