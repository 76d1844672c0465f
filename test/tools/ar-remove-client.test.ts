/**
 * ar_surface_remove as an MCP client sees it (both protocol eras, the stdio server in-process):
 * a client watching the surface's resource is told of the removal after the tool's result,
 * and reading the resource, or the surface, then says not_found.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { silentLogger } from '../../server/log.js';
import { serveMemoryStdio } from '../../server/stdio.js';
import { SingleTenantMemory } from '../../server/tenants/single-tenant-memory.js';
import { memoryCatalog, memoryTools, openTenantMemory } from '../../tools/index.js';
import { connectStreams, toolErrorOf, type Era } from '../support/mcp-clients.js';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-ar-remove-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe.each<Era>(['older', 'newer'])('%s-era client', (era) => {
  test('a watcher of memory://ar/{id} hears of the removal; the resource and the surface then read not_found', async () => {
    const principal = localPrincipal();
    const tenant = principal.caller.tenant;
    const memory = new SingleTenantMemory({ dataDir, tenant, open: (dir) => openTenantMemory(dir, tenant) });
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const serving = serveMemoryStdio({ surface: { tools: memoryTools, catalog: memoryCatalog, log: silentLogger() }, principal, memory: memory.memory, stdin, stdout });
    const client = await connectStreams(era, stdin, stdout);
    try {
      const pose = [0, 0, 0, 0, 0, 0, 1];
      expect((await client.callTool('ar_observe', { surface: 'desk', pose })).isError).not.toBe(true);
      const uri = 'memory://ar/desk';
      const watch = await client.watchResource(uri);
      const removed = await client.callTool('ar_surface_remove', { surface: 'desk' });
      expect(removed.structuredContent).toEqual({ observations_removed: 1, offset: expect.any(Number) });
      expect(await client.nextResourceUpdate()).toBe(uri);
      await expect(client.readResource(uri)).rejects.toThrow(/no resource memory:\/\/ar\/desk/);
      expect(toolErrorOf(await client.callTool('ar_surface_get', { surface: 'desk' }))).toMatchObject({ code: 'not_found' });
      await watch.close();
    } finally {
      await client.close();
      await serving.closed;
      await memory.close();
    }
  });
});
