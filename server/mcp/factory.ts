/**
 * The one factory behind every transport and both protocol eras: given who is calling and
 * their tenant's memory, build an MCP server exposing the surface's tools and resources.
 * Low-level `Server` (not McpServer) because the capability filter, the forbidden-vs-unknown
 * distinction, the argument bound and the error codes must be ours, in one place.
 */
import type { Server } from '@modelcontextprotocol/server';
import { ParamsCheckedServer } from './params-checked-server.js';
import type { Principal } from '../auth/principal.js';
import { startChangeFeed, type ChangeDelivery } from './change-feed.js';
import { memoryAccess, type MemorySource } from './memory-source.js';
import { tapRequests } from './request-audit.js';
import { registerResourceHandlers } from './resource-handlers.js';
import type { McpSurface } from './surface.js';
import { registerToolHandlers } from './tool-calls.js';

export const serverInfo = { name: 'ioboxx-memory', version: '0.1.0' } as const;

const instructions =
  "A tenant's durable working memory. Tools named domain_verb read and write it; every write result carries its commit offset. " +
  'Resources (memory://...) are the stored objects and rows; subscribe to be told after a change is durable. ' +
  'Errors are isError results with JSON {error: {code, message, hint}}.';

export interface MemoryServerSession {
  readonly principal: Principal;
  readonly memory: MemorySource;
  readonly changes: ChangeDelivery;
  /**
   * Runs before every tools/* and resources/* request; throws (a MemoryError, e.g.
   * unauthenticated) when the principal no longer holds, such as an expired stdio token.
   */
  readonly revalidate?: () => Promise<void>;
}

export function createMemoryServer(surface: McpSurface, session: MemoryServerSession): Server {
  const { principal, memory, changes, revalidate } = session;
  const server = new ParamsCheckedServer(serverInfo, {
    capabilities: { tools: {}, resources: { subscribe: true } },
    instructions,
  });
  const subscribed = new Set<string>();
  let closed = false;
  let stopFeed: (() => void) | undefined;
  const feedsChanges = changes !== 'none' && principal.capabilities.has('read');
  const withMemory = memoryAccess(memory, (onCommit) => {
    if (feedsChanges && !closed) stopFeed = startChangeFeed(server, onCommit, surface.catalog, changes, subscribed, surface.log);
  });
  tapRequests(server, surface, principal);
  registerToolHandlers(server, surface, principal, withMemory, revalidate);
  registerResourceHandlers(server, surface, principal, withMemory, subscribed, revalidate);

  // Serving entries may wrap onclose later; they chain to whatever was set before them.
  server.onclose = () => {
    closed = true;
    stopFeed?.();
    subscribed.clear();
  };
  return server;
}
