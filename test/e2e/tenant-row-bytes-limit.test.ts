/**
 * A tenant at its row bytes limit (IOBOXX_TENANT_ROW_BYTES_MAX): a write that would grow it is a
 * tool error limit_exceeded naming the limit, with a hint, and nothing of it is stored; deletes
 * still pass. The real built server over stdio, with a real MCP client.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectOlderStdio, toolErrorOf, type McpTestClient } from '../support/mcp-clients.js';
import { baseEnv, repoRoot, serverBin } from './server-process.js';

const rowBytesMax = 8000;
let dataDir: string;
let client: McpTestClient;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-row-bytes-limit-'));
  const env = { ...baseEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_TENANT_ROW_BYTES_MAX: String(rowBytesMax) };
  client = await connectOlderStdio({ command: process.execPath, args: [serverBin, 'serve', '--stdio'], env, cwd: repoRoot, stderr: 'ignore' });
}, 120_000);
afterAll(async () => {
  await client?.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('object_put over the tenant row bytes limit is limit_exceeded with a hint, and writes nothing', async () => {
  const small = await client.callTool('object_put', { id: 'small', type: 'note', attributes: { text: 'fits' } });
  expect(small.isError).toBeFalsy();
  const big = await client.callTool('object_put', { id: 'big', type: 'note', attributes: { text: 'x'.repeat(rowBytesMax) } });
  const error = toolErrorOf(big);
  expect(error).toMatchObject({ code: 'limit_exceeded' });
  expect(error?.message).toContain(`tenant row bytes limit of ${rowBytesMax}`);
  expect(error?.hint).toContain('IOBOXX_TENANT_ROW_BYTES_MAX');
  expect(toolErrorOf(await client.callTool('object_get', { id: 'big' }))).toMatchObject({ code: 'not_found' });
  expect((await client.callTool('object_delete', { id: 'small' })).isError).toBeFalsy();
}, 120_000);
