/**
 * The transport of one 2025-era Streamable HTTP session: the SDK's
 * NodeStreamableHTTPServerTransport (JSON answers), plus a direct path for the hottest exchange —
 * a POST carrying one well-formed JSON-RPC request on the initialized session.
 *
 * Through the SDK transport every such POST is converted to a web Request, checked, handed to
 * the server, and its answer built as a web Response and converted back to the Node response:
 * most of the server's CPU per call. The direct path hands the request to the same server
 * (`onmessage`) and writes the server's answer as the same JSON body with the same status and
 * headers; a tools/call the SDK would take unchanged goes one step further, to the session
 * server's own tool caller (the function its tools/call handler calls, as on stdio), past the
 * SDK's message and result schemas. It is taken only where the SDK would serve the request as such; everything else
 * (batches, notifications, posted responses, initialize, GET, DELETE, malformed messages,
 * unsupported protocol versions, a missing Accept type, a `_meta` the SDK would have to check)
 * goes through the SDK transport unchanged, so every refusal stays the SDK's own. A request's
 * progress (its `_meta` carries a progressToken) turns its answer into an SSE stream
 * (direct-exchange.ts), where the SDK's JSON mode would drop it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthInfo, JSONRPCMessage, JSONRPCRequest, MessageExtraInfo, Transport, TransportSendOptions } from '@modelcontextprotocol/server';
import { SUPPORTED_PROTOCOL_VERSIONS, isJSONRPCErrorResponse, isJSONRPCNotification, isJSONRPCRequest, isJSONRPCResultResponse } from '@modelcontextprotocol/server';
import { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import { directRequestOf, directToolAnswer, directToolCallOf } from '../mcp/direct-request.js';
import { answerJson, DirectExchange } from './direct-exchange.js';
import { SessionEventStore } from './session-event-store.js';
import { resourceUpdatedBytesMin, StreamBacklog } from './stream-backlog.js';
import type { ToolCaller } from '../mcp/tool-calls.js';

/** Re-exported: the HTTP direct path's tests name it here. */
export { directRequestOf };

type RequestId = JSONRPCRequest['id'];

/**
 * The answer to a request its client cancelled (notifications/cancelled), so its POST ends: the
 * code LSP gives a cancelled request (JSON-RPC and MCP define none).
 */
export const requestCancelledCode = -32800;
const requestCancelledMessage =
  'request cancelled by the client (notifications/cancelled); a write it started may still have been committed: read before retrying';
type NodeTransportOptions = ConstructorParameters<typeof NodeStreamableHTTPServerTransport>[0];
type ScopeChallengeResolver = Parameters<NodeStreamableHTTPServerTransport['setScopeChallengeResolver']>[0];

/** What a session's GET stream may owe its client, and who hears of a stream cut for it. */
export interface StreamBounds {
  readonly bytesMax: number;
  readonly onCut: (owedBytes: number) => void;
}

/** At most the bytes `message` takes on a stream (its JSON; a resource update's without measuring). */
function messageBytesMin(message: JSONRPCMessage): number {
  const note = message as { method?: string; params?: { uri?: unknown } };
  if (note.method === 'notifications/resources/updated' && typeof note.params?.uri === 'string') return resourceUpdatedBytesMin(note.params.uri);
  return JSON.stringify(message).length;
}

/** The error of a request whose id a request still running on the session has. */
function idInFlightError(id: RequestId): { code: number; message: string } {
  return { code: -32600, message: `request id ${JSON.stringify(id)} is already in flight on this session; ids must be unique among a session's requests in flight` };
}

export class SessionTransport implements Transport {
  readonly sdk: NodeStreamableHTTPServerTransport;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => void;
  private closed = false;
  private negotiatedVersion: string | undefined;
  private supportedVersions: readonly string[] = SUPPORTED_PROTOCOL_VERSIONS;
  /** The server asked for scope challenges: the SDK transport answers them, so no direct path. */
  private scopeChallenges = false;
  /** Requests taken by the direct path, awaiting their answer. */
  private readonly direct = new Map<RequestId, DirectExchange>();
  /** Requests handed to the SDK transport and not yet answered. */
  private readonly sdkRequests = new Set<RequestId>();
  /**
   * The session server's tool caller once it may take calls directly (initialize answered),
   * else undefined; set by whoever connects the server. Unset: tools/call goes to the server.
   */
  directToolCaller?: () => ToolCaller | undefined;

  /** What the session's GET stream was sent, for a client that reconnects after a drop. */
  readonly events = new SessionEventStore();

  /** Bounds the session's GET stream: what it owes a client that stopped reading (stream-backlog.ts). */
  private readonly streamBounds: StreamBounds | undefined;
  /** The open GET stream's backlog, if a stream is open. */
  private streamBacklog: StreamBacklog | undefined;

  constructor(options: NodeTransportOptions, streamBounds?: StreamBounds) {
    this.streamBounds = streamBounds;
    this.sdk = new NodeStreamableHTTPServerTransport({ ...options, enableJsonResponse: true, eventStore: this.events });
    this.sdk.onmessage = (message, extra) => {
      if (isJSONRPCRequest(message)) this.sdkRequests.add(message.id);
      this.onmessage?.(message, extra); // a cancellation reaches the server first: it aborts the request...
      if (isJSONRPCNotification(message) && message.method === 'notifications/cancelled') this.answerCancelled(message.params?.['requestId']);
    };
    this.sdk.onerror = (error) => this.onerror?.(error);
    this.sdk.onclose = () => {
      this.closed = true;
      this.endDirect();
      this.onclose?.();
    };
  }

  get sessionId(): string | undefined {
    return this.sdk.sessionId;
  }

  /** The protocol version initialize negotiated (undefined before): it decides whether batches are served. */
  get protocolVersion(): string | undefined {
    return this.negotiatedVersion;
  }

  /** The server calls this as it answers initialize. */
  setProtocolVersion(version: string): void {
    this.negotiatedVersion = version;
  }

  start(): Promise<void> {
    return this.sdk.start();
  }

  close(): Promise<void> {
    return this.sdk.close();
  }

  setSupportedProtocolVersions(versions: string[]): void {
    this.supportedVersions = versions;
    this.sdk.setSupportedProtocolVersions(versions);
  }

  setScopeChallengeResolver(resolver: ScopeChallengeResolver): void {
    this.scopeChallenges = true;
    this.sdk.setScopeChallengeResolver(resolver);
  }

  /** Any request of the session through the SDK transport (every case the direct path leaves). */
  handleRequest(req: IncomingMessage & { auth?: AuthInfo }, res: ServerResponse, parsedBody?: unknown): Promise<void> {
    // A request the SDK would take with the id of a direct request in flight: its answer would go
    // to that request's POST (send() looks the id up in `direct` first), and the direct request's
    // answer to this one. Refused, as serveDirect refuses the other way round; nothing run.
    const clash = req.method === 'POST' ? this.directIdIn(parsedBody) : undefined;
    if (clash !== undefined) {
      answerJson(res, 400, JSON.stringify({ jsonrpc: '2.0', id: Array.isArray(parsedBody) ? null : clash, error: idInFlightError(clash) }), this.sessionId);
      return Promise.resolve();
    }
    // A GET opens the session's stream (the SDK refuses a second one while the first is open).
    if (req.method === 'GET' && this.streamBounds !== undefined && (this.streamBacklog === undefined || this.streamBacklog.ended)) {
      const backlog = new StreamBacklog(res, this.streamBounds.bytesMax, this.streamBounds.onCut);
      this.streamBacklog = backlog;
      res.on('close', () => {
        if (this.streamBacklog === backlog) this.streamBacklog = undefined;
      });
    }
    return this.sdk.handleRequest(req, res, parsedBody);
  }

  /**
   * Serves `body` (already parsed JSON) directly when the SDK would serve it as one request on
   * this session and answer it with a JSON body; returns false (nothing written) otherwise.
   * The caller has checked the session id and the Content-Type (415 first, as the SDK does).
   */
  serveDirect(req: IncomingMessage, res: ServerResponse, body: unknown): boolean {
    if (this.closed || this.scopeChallenges || this.sessionId === undefined) return false;
    const request = directRequestOf(body);
    if (request === undefined) return false;
    if (this.direct.has(request.id) || this.sdkRequests.has(request.id)) {
      // Answers are matched to requests by id: a second request with the id of one still running
      // (on either path) would take its answer, and leave itself unanswered. Refused, nothing run.
      answerJson(res, 400, JSON.stringify({ jsonrpc: '2.0', id: request.id, error: idInFlightError(request.id) }), this.sessionId);
      return true;
    }
    // The SDK's checks, in its order: Accept (406), then the session (the caller matched the
    // id), then an MCP-Protocol-Version header it does not support (400).
    const accept = req.headers.accept;
    if (accept === undefined || !accept.includes('application/json') || !accept.includes('text/event-stream')) return false;
    const version = req.headers['mcp-protocol-version'];
    if (version !== undefined && (typeof version !== 'string' || !this.supportedVersions.includes(version))) return false;
    const exchange = new DirectExchange(res);
    this.direct.set(request.id, exchange);
    const call = directToolCallOf(request);
    const callTool = call === undefined ? undefined : this.directToolCaller?.();
    if (call === undefined || callTool === undefined) {
      this.onmessage?.(request, { authInfo: (req as { auth?: AuthInfo }).auth });
      return true;
    }
    const id = request.id;
    void directToolAnswer(callTool, call, id, (error) => this.onerror?.(error)).then((answer) => this.answerDirect(id, exchange, answer));
    return true;
  }

  /** The id of a request in `body` (one message or a batch) that a direct request in flight has, if any. */
  private directIdIn(body: unknown): RequestId | undefined {
    if (this.direct.size === 0) return undefined;
    for (const message of Array.isArray(body) ? body : [body]) {
      if (isJSONRPCRequest(message) && this.direct.has(message.id)) return message.id;
    }
    return undefined;
  }

  /** The answer of a direct request (200, the session id), unless the session ended meanwhile (endDirect answered it). */
  private answerDirect(id: RequestId, exchange: DirectExchange, message: JSONRPCMessage): void {
    if (this.direct.get(id) !== exchange) return;
    this.direct.delete(id);
    exchange.answer(200, JSON.stringify(message), this.sessionId);
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const isAnswer = isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message);
    const id = isAnswer ? message.id : options?.relatedRequestId;
    const exchange = id === undefined ? undefined : this.direct.get(id);
    if (exchange === undefined) {
      if (isAnswer) this.sdkRequests.delete(message.id!);
      // A message related to no request rides the GET stream: owed to its client until written,
      // and dropped from the stream (kept for a reconnect) once it is cut.
      if (id === undefined) this.streamBacklog?.owe(messageBytesMin(message));
      return this.sdk.send(message, options);
    }
    // A message related to the request (its progress) turns its answer into a stream (direct-exchange.ts).
    if (!isAnswer) return exchange.notify(message, this.sessionId);
    this.answerDirect(id!, exchange, message);
  }

  /**
   * ...which then never answers it. Over HTTP the request's POST still waits for its answer
   * (JSON-RPC's "no response" leaves an HTTP request open until the client gives up, holding its
   * connection and the shutdown's drain), so the POST gets one: the request's error, cancelled.
   */
  private answerCancelled(id: unknown): void {
    if (typeof id !== 'string' && typeof id !== 'number') return;
    const message: JSONRPCMessage = { jsonrpc: '2.0', id, error: { code: requestCancelledCode, message: requestCancelledMessage } };
    const exchange = this.direct.get(id);
    if (exchange !== undefined) return this.answerDirect(id, exchange, message);
    if (this.sdkRequests.delete(id)) this.sdk.send(message).catch((error: unknown) => this.onerror?.(error instanceof Error ? error : new Error(String(error))));
  }

  /** The session closed with direct requests unanswered: they end as a request on a closed session would. */
  private endDirect(): void {
    const error = { code: -32001, message: 'Session not found' };
    const json = JSON.stringify({ jsonrpc: '2.0', error, id: null });
    for (const [id, exchange] of this.direct) exchange.answer(404, json, undefined, JSON.stringify({ jsonrpc: '2.0', id, error }));
    this.direct.clear();
    this.sdkRequests.clear();
  }
}
