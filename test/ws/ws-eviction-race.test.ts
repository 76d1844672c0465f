/**
 * A WebSocket connection whose tenant's store is chosen for eviction in the moment its lease is
 * granted (the store opened for it while another tenant waited for the one slot) lets the store
 * go like the tenant's open connections do. Before, the eviction's releaseStore looked only at
 * the connections already open: this one was not yet, it kept the lease on the closing store,
 * and the waiting tenant's calls failed `busy` for as long as the connection lived. The tenant
 * registry over real stores, the WebSocket endpoint on a loopback HTTP server, a real client.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import WebSocket from 'ws';
import { TenantRegistry } from '../../server/tenants/registry.js';
import { attachWebSocket, type WebSocketServing } from '../../server/ws/attach-websocket.js';
import { memoryExposedTables } from '../../server/ws/exposed-tables.js';
import { openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { tenantHeader, tenantHeaderAuthenticate } from '../mcp/fixtures/http-fixture.js';

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

test('a connection whose store is evicted while its lease is being granted lets the store go; the waiting tenant gets the slot', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-ws-evict-race-'));
  let serving: WebSocketServing | undefined;
  const registry = new TenantRegistry<TenantMemory>({
    dataDir, open: (tenant, dir) => openTenantMemory(dir, tenant), openTenantsMax: 1, slotWaitMs: 3_000,
    // As the server wires it: an evicted store's WebSocket connections let go of it.
    observe: (event) => {
      if (event.kind === 'closing' && event.why === 'evicted') serving?.releaseStore(event.tenant, 'evicted');
    },
  });
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  serving = attachWebSocket(server, {
    authenticate: tenantHeaderAuthenticate,
    memoryFor: async (principal) => {
      const lease = await registry.acquire(principal.caller.tenant);
      return { memory: lease.store, release: () => lease.release() };
    },
    tables: memoryExposedTables(),
  });
  cleanup = async () => {
    await serving!.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await registry.close();
    rmSync(dataDir, { recursive: true, force: true });
  };

  // b holds the one slot; a's connection waits for it, and b's store is chosen for eviction.
  const held = await registry.acquire('tenant-b');
  const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as { port: number }).port}/ws`, { headers: { [tenantHeader]: 'tenant-a' } });
  const outcome = new Promise<string>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(`refused ${res.statusCode}`));
    ws.on('close', (code) => resolve(`closed ${code}`));
    ws.on('error', () => undefined);
  });
  while (registry.stats().waitingForSlot === 0) await new Promise((resolve) => setImmediate(resolve));
  // b is asked for again while a's store opens: a, opened for a connection, is evicted for b at once.
  held.release();
  const b = registry.acquire('tenant-b');

  const lease = await b.catch((error: Error) => {
    throw new Error(`b never got the slot back (a's connection kept the evicted store): ${error.message}`);
  });
  expect(lease.tenant).toBe('tenant-b');
  expect(['refused 503', 'closed 1013']).toContain(await outcome);
  lease.release();
});
