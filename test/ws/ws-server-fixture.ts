/**
 * A WebSocket endpoint on a loopback HTTP server over real tenant stores (the tenant registry
 * in a fresh data dir), with the test's own authenticate and hooks.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { MemoryFor } from '../../server/http/seams.js';
import { TenantRegistry } from '../../server/tenants/registry.js';
import { attachWebSocket, type WebSocketDeps, type WebSocketServing } from '../../server/ws/attach-websocket.js';
import { memoryExposedTables } from '../../server/ws/exposed-tables.js';
import { openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';

export interface WsTestServer {
  /** `ws://127.0.0.1:PORT` */
  readonly base: string;
  readonly serving: WebSocketServing;
  close(): Promise<void>;
}

export async function startWsTestServer(label: string, deps: Omit<WebSocketDeps, 'memoryFor' | 'tables'>): Promise<WsTestServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), `ioboxx-${label}-`));
  const registry = new TenantRegistry<TenantMemory>({ dataDir, open: (tenant, dir) => openTenantMemory(dir, tenant) });
  const server = createServer((_req, res) => res.writeHead(404).end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const memoryFor: MemoryFor = async (principal) => {
    const lease = await registry.acquire(principal.caller.tenant);
    return { memory: lease.store, release: () => lease.release() };
  };
  const serving = attachWebSocket(server, { ...deps, memoryFor, tables: memoryExposedTables() });
  return {
    base: `ws://127.0.0.1:${(server.address() as { port: number }).port}`,
    serving,
    async close() {
      await serving.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await registry.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
