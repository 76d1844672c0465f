/**
 * The legacy HTTP+SSE transport (2024-11-05 era clients): GET `/sse` opens the event stream
 * and names the POST endpoint (`/messages?sessionId=...`) in its first event. The SDK 2.x
 * packages no longer ship a server side for it, so the 1.x SDK's SSEServerTransport carries
 * the same factory-built server (a JSON-RPC transport is era-neutral at this level).
 */
import type { Request, Response } from 'express';
import type { Transport } from '@modelcontextprotocol/server';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { Principal } from '../auth/principal.js';
import { createMemoryServer } from '../mcp/factory.js';
import type { McpSurface } from '../mcp/surface.js';
import { sendJsonRpcError } from './json-rpc-error.js';
import type { MemoryFor } from './seams.js';
import type { SessionTable } from './session-table.js';

export interface SseRouteOptions {
  readonly surface: McpSurface;
  readonly memoryFor: MemoryFor;
  readonly sessions: SessionTable;
}

export interface SseRoute {
  /** GET `.../sse`: `messagesPath` is where this stream's client must POST. */
  openStream(req: Request, res: Response, principal: Principal, messagesPath: string): Promise<void>;
  /** POST `.../messages?sessionId=`: `req.body` is the parsed JSON body. */
  postMessage(req: Request, res: Response, principal: Principal): Promise<void>;
}

export function createSseRoute(options: SseRouteOptions): SseRoute {
  const { surface, memoryFor, sessions } = options;

  async function openStream(_req: Request, res: Response, principal: Principal, messagesPath: string): Promise<void> {
    const refusal = sessions.makeRoomFor(principal.caller.tenant);
    if (refusal !== undefined) {
      res.setHeader('Retry-After', '1');
      sendJsonRpcError(res, 503, -32000, refusal);
      return;
    }
    const lease = await memoryFor(principal);
    const transport = new SSEServerTransport(messagesPath, res);
    const server = createMemoryServer(surface, { principal, memory: lease.memory, changes: 'subscribed' });
    sessions.add({ id: transport.sessionId, kind: 'sse', transport, principal, close: () => server.close() });
    sessions.track(transport.sessionId, res, false); // the event stream; calls answer on it (POST /messages is not tracked)
    res.on('close', () => {
      sessions.remove(transport.sessionId);
      void server.close().finally(() => lease.release());
    });
    // The 1.x transport's shape matches the 2.x Transport contract (start/send/close + callbacks).
    await server.connect(transport as unknown as Transport);
  }

  async function postMessage(req: Request, res: Response, principal: Principal): Promise<void> {
    const sessionId = typeof req.query['sessionId'] === 'string' ? req.query['sessionId'] : undefined;
    const session = sessionId === undefined ? undefined : sessions.find(sessionId, principal);
    if (session?.kind !== 'sse') {
      sendJsonRpcError(res, 404, -32001, 'Session not found; open a new stream with GET /sse');
      return;
    }
    await session.transport.handlePostMessage(req, res, req.body);
  }

  return { openStream, postMessage };
}
