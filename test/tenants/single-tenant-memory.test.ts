/**
 * The stdio process's one tenant (SingleTenantMemory) served over in-process stdio: the store
 * opens on first use, not for the 2.x client's `server/discover` probe (a desktop client runs
 * that probe on a throwaway process, which must not open and recover the store).
 * Its failed-store reopen over stdio: failed-store-reopen.test.ts.
 */
import { lstat, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { silentLogger } from '../../server/log.js';
import { serveMemoryStdio } from '../../server/stdio.js';
import { SingleTenantMemory } from '../../server/tenants/single-tenant-memory.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';
import { memoryCatalog, memoryTools, openTenantMemory } from '../../tools/index.js';
import { connectStreams } from '../support/mcp-clients.js';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-single-tenant-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

test('over stdio the 2.x client\'s connect (server/discover) and tools/list open no store', async () => {
  const principal = localPrincipal();
  const tenant = principal.caller.tenant;
  let opens = 0;
  const tenantMemory = new SingleTenantMemory({
    dataDir,
    tenant,
    open: (dir) => {
      opens += 1;
      return openTenantMemory(dir, tenant);
    },
  });
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const serving = serveMemoryStdio({ surface: { tools: memoryTools, catalog: memoryCatalog, log: silentLogger() }, principal, memory: tenantMemory.memory, stdin, stdout });
  const client = await connectStreams('newer', stdin, stdout);
  expect(await client.listTools()).not.toHaveLength(0);
  await client.close();
  await serving.closed;
  // The probe process's end (its closing of the store): an open begun meanwhile is awaited here.
  await tenantMemory.close();
  expect(opens, 'stores opened by the connect and tools/list').toBe(0);
  expect(await lstat(tenantDir(dataDir, tenant)).then(() => 'created', () => 'absent')).toBe('absent');
});
