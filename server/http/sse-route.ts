/**
 * The legacy HTTP+SSE transport (2024-11-05 era clients): GET `/sse` opens the event stream
 * and names the POST endpoint (`/messages?sessionId=...`) in its first event. The SDK 2.x
 * packages no longer ship a server side for it, so the 1.x SDK's SSEServerTransport carries
 * the same factory-built server (a JSON-RPC transport is era-neutral at this level).
 */
import type { Request, Response } from 'express';
import { isJSONRPCErrorResponse, isJSONRPCNotification, isJSONRPCRequest, isJSONRPCResultResponse, isJsonContentType, type Transport } from '@modelcontextprotocol/server';
import { invalidPostBody } from '../mcp/json-rpc-message.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { Principal } from '../auth/principal.js';
import { createMemoryServer } from '../mcp/factory.js';
import type { McpSurface } from '../mcp/surface.js';
import { sendJsonRpcError } from './json-rpc-error.js';
import { sessionMemory, type CommitsOf, type MemoryFor } from './seams.js';
import { sessionNotFound, type SessionTable } from './session-table.js';
import type { InFlightCalls } from '../ops/in-flight.js';
import { streamCutReport } from './stream-backlog.js';
import { adoptAdmissionSlot } from '../ops/request-admission.js';

export interface SseRouteOptions {
  readonly surface: McpSurface;
  readonly memoryFor: MemoryFor;
  readonly commitsOf: CommitsOf;
  readonly sessions: SessionTable;
  /** A posted request is a call in flight until its answer is written on the stream (graceful shutdown). */
  readonly calls?: InFlightCalls;
  /** Bytes a stream may hold unsent for its client before it is cut (streamBacklogBytesMax). */
  readonly streamBacklogBytesMax: number;
  /** A stream cut for a client that stopped reading (for the metrics). Must not throw. */
  readonly onStreamCut?: (tenant: string) => void;
  /** Tests: a shorter sseKeepAliveMs. */
  readonly keepAliveMs?: number;
}

/**
 * An SSE comment goes down an open stream this often. The 1.x transport sends nothing while the
 * session is quiet, and a proxy or balancer cuts a connection idle for its read timeout (often
 * 60 s): for this transport that ends the session. As the SDK's own streams do (15 s).
 */
export const sseKeepAliveMs = 15_000;

type MessageId = string | number;

export interface SseRoute {
  /** GET `.../sse`: `messagesPath` is where this stream's client must POST. */
  openStream(req: Request, res: Response, principal: Principal, messagesPath: string): Promise<void>;
  /** POST `.../messages?sessionId=`: `req.body` is the parsed JSON body. */
  postMessage(req: Request, res: Response, principal: Principal): Promise<void>;
}

export function createSseRoute(options: SseRouteOptions): SseRoute {
  const { surface, memoryFor, commitsOf, sessions, calls } = options;
  /** Per session: the posted requests whose answer has not been written on the stream yet. */
  const unanswered = new Map<string, Map<MessageId, () => void>>();

  async function openStream(_req: Request, res: Response, principal: Principal, messagesPath: string): Promise<void> {
    const refusal = sessions.makeRoomFor(principal.caller.tenant);
    if (refusal !== undefined) {
      res.setHeader('Retry-After', '1');
      sendJsonRpcError(res, 503, -32000, refusal);
      return;
    }
    const transport = new SSEServerTransport(messagesPath, res);
    const server = createMemoryServer(surface, { principal, memory: sessionMemory(principal, memoryFor, commitsOf), changes: 'subscribed' });
    sessions.add({ id: transport.sessionId, kind: 'sse', transport, principal, close: () => server.close() });
    sessions.track(transport.sessionId, res, 'stream'); // calls answer on it: each posted request counts as a call until then
    const waiting = new Map<MessageId, () => void>();
    unanswered.set(transport.sessionId, waiting);
    const send = transport.send.bind(transport);
    const cut = streamCutReport(surface.log, 'SSE session stream', principal.caller.tenant, options.streamBacklogBytesMax, options.onStreamCut);
    transport.send = async (message) => {
      await send(message);
      // The 1.x transport writes straight to the response, so what the client has not read waits
      // in its buffer: past the bound the stream is cut (the session ends; its client connects again).
      if (res.writableLength > options.streamBacklogBytesMax && !res.destroyed) {
        cut(res.writableLength);
        res.destroy();
      }
      if ((isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) && message.id !== undefined) endCall(waiting, message.id);
    };
    const keepAlive = setInterval(() => {
      if (!res.destroyed && !res.writableEnded) res.write(': keep-alive\n\n');
    }, options.keepAliveMs ?? sseKeepAliveMs);
    keepAlive.unref();
    res.on('close', () => {
      clearInterval(keepAlive);
      sessions.remove(transport.sessionId);
      unanswered.delete(transport.sessionId);
      for (const end of waiting.values()) end();
      waiting.clear();
      void server.close().catch((error: unknown) => surface.log.debug({ err: error }, 'closing an SSE session failed'));
    });
    // The 1.x transport's shape matches the 2.x Transport contract (start/send/close + callbacks).
    await server.connect(transport as unknown as Transport);
  }

  async function postMessage(req: Request, res: Response, principal: Principal): Promise<void> {
    const sessionId = typeof req.query['sessionId'] === 'string' ? req.query['sessionId'] : undefined;
    const session = sessionId === undefined ? undefined : sessions.find(sessionId, principal);
    if (session?.kind !== 'sse') {
      sendJsonRpcError(res, 404, -32001, sessionNotFound('open a new stream with GET /sse'));
      return;
    }
    // Refused as /mcp refuses them, in JSON-RPC shape: the 1.x transport answered a plain-text 400
    // ('Invalid message: [object Object]', 'Error: Unsupported content-type: text/plain').
    if (!isJsonContentType(req.headers['content-type'] ?? null)) {
      sendJsonRpcError(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
      return;
    }
    if (Array.isArray(req.body)) {
      sendJsonRpcError(res, 400, -32600, 'Invalid Request: the HTTP+SSE transport takes one JSON-RPC message per POST, not a batch');
      return;
    }
    const invalid = invalidPostBody(req.body);
    if (invalid !== undefined) {
      sendJsonRpcError(res, 400, -32600, invalid.message, undefined, invalid.id);
      return;
    }
    const waiting = unanswered.get(session.id);
    const id = isJSONRPCRequest(req.body) ? req.body.id : undefined;
    const counted = id !== undefined && waiting !== undefined && !waiting.has(id);
    if (counted) {
      const endSessionCall = sessions.begin(session.id, 'call');
      const endInFlight = calls?.begin();
      // The call's admission slot (its tenant's inFlightMax) is held until its answer is on the
      // stream, not given back with the 202: else a client ran any number of calls at once.
      const endSlot = adoptAdmissionSlot(res);
      waiting.set(id, () => {
        endSessionCall();
        endInFlight?.();
        endSlot?.();
      });
    }
    // A cancelled request gets no answer (the SDK drops it): it is over.
    const cancelled = cancelledIdOf(req.body);
    if (cancelled !== undefined) endCall(waiting, cancelled);
    try {
      await session.transport.handlePostMessage(req, res, req.body);
    } finally {
      // Refused by the transport (not 202 Accepted): the server never saw it, no answer will come.
      if (counted && res.statusCode !== 202) endCall(waiting, id);
    }
  }

  return { openStream, postMessage };
}

function endCall(waiting: Map<MessageId, () => void> | undefined, id: MessageId): void {
  waiting?.get(id)?.();
  waiting?.delete(id);
}

/** The request a `notifications/cancelled` names. */
function cancelledIdOf(body: unknown): MessageId | undefined {
  if (!isJSONRPCNotification(body) || body.method !== 'notifications/cancelled') return undefined;
  const id = body.params?.['requestId'];
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}
