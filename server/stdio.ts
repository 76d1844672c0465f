/**
 * MCP over stdio for one principal (local mode, or a token from the environment): both
 * protocol eras from the one factory via serveStdio. stdout carries only MCP messages.
 */
import type { Server } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import type { Readable, Writable } from 'node:stream';
import type { Principal } from './auth/principal.js';
import { createMemoryServer } from './mcp/factory.js';
import type { MemorySource } from './mcp/memory-source.js';
import { StdioTransport } from './mcp/stdio-transport.js';
import type { McpSurface } from './mcp/surface.js';
import { checkedListen, reportRequest } from './mcp/request-audit.js';
import { toolCallerOf } from './mcp/tool-calls.js';

export interface StdioServingOptions {
  readonly surface: McpSurface;
  readonly principal: Principal;
  /**
   * The tenant's memory, or a function opening it on first use. Prefer the function: a 2.x
   * client probes with `server/discover` on a throwaway sibling process first, which then
   * never opens (and recovers) the store.
   */
  readonly memory: MemorySource;
  /** Before every request: throw when the principal no longer holds (an expired token). */
  readonly revalidate?: () => Promise<void>;
  /** Defaults to process.stdin / process.stdout. */
  readonly stdin?: Readable;
  readonly stdout?: Writable;
  /** Tests: a smaller stdioOutputBacklogBytesMax (what stdout may hold unwritten before stdin is read no further). */
  readonly outputBacklogBytesMax?: number;
}

export interface StdioServing {
  /** Resolves when the connection is over (the client closed stdin, or close() was called). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

export function serveMemoryStdio(options: StdioServingOptions): StdioServing {
  const { surface, principal, memory, revalidate } = options;
  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));
  // The connection's 2025-era server, once serveStdio has pinned one (a legacy connection pins
  // exactly one, for its lifetime).
  let legacyServer: Server | undefined;
  const transport = new StdioTransport(options.stdin, options.stdout, {
    // Direct tools/call only once initialize has been answered: before that, the SDK decides.
    directToolCaller: () => (legacyServer?.getClientVersion() !== undefined ? toolCallerOf(legacyServer!) : undefined),
    onClosed: () => markClosed(),
    listenProblem: (message) => checkedListen(surface, principal, message),
    // As the HTTP level's refusals are recorded (action `http`): what was refused, not what it asked.
    onLineRefused: (outcome, reason) => {
      surface.log.warn({ outcome, reason }, 'stdio line refused');
      reportRequest(surface, { principal, method: 'stdio', outcome, durationMs: 0 });
    },
    ...(options.outputBacklogBytesMax !== undefined && { outputBacklogBytesMax: options.outputBacklogBytesMax }),
  });
  const handle = serveStdio(
    // A 2026-07-28 connection gets every change and the entry's listen router filters per
    // subscription; a 2025 connection gets only what it subscribed to.
    (ctx) => {
      const server = createMemoryServer(surface, {
        principal,
        memory,
        changes: ctx.era === 'modern' ? 'all' : 'subscribed',
        ...(revalidate !== undefined && { revalidate }),
      });
      if (ctx.era === 'legacy') legacyServer = server;
      return server;
    },
    {
      transport,
      onerror: (error) => surface.log.warn({ err: error }, 'stdio connection error'),
    },
  );
  return {
    closed,
    close: async () => {
      await handle.close();
      markClosed();
    },
  };
}
