/**
 * Streamable HTTP on `/mcp` and `/t/:tenant/mcp`, both protocol eras:
 * - 2026-07-28 requests go to `createMcpHandler` (one per-request server per exchange);
 *   a `subscriptions/listen` gets its own handler whose bus is fed by this tenant's durable
 *   commits, so a listener can only ever hear its own tenant;
 * - 2025-era requests (routed with `isLegacyRequest`) go to a sessionful transport: older
 *   clients need the session and its GET stream for resources/subscribe pushes, which the
 *   SDK's default stateless legacy path cannot give.
 */
import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';
import { createMcpHandler, isInitializeRequest, isJSONRPCRequest, isJsonContentType, isLegacyRequest, type McpHttpHandler } from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { classificationRequest } from './classification-request.js';
import type { Principal } from '../auth/principal.js';
import { tokenExpiresAtMsOf, whenTokenExpires } from '../auth/token-expiry.js';
import { createMemoryServer } from '../mcp/factory.js';
import { toolCallerOf } from '../mcp/tool-calls.js';
import type { McpSurface } from '../mcp/surface.js';
import { sendJsonRpcError } from './json-rpc-error.js';
import { authInfoOf, carriedBy } from './principal-context.js';
import { sessionMemory, type CommitsOf, type MemoryFor } from './seams.js';
import type { LeasedMemory } from '../mcp/memory-source.js';
import { sessionNotFound, type SessionTable } from './session-table.js';
import { SessionTransport } from './session-transport.js';
import { checkedListen } from '../mcp/request-audit.js';
import { directRequestOf, progressTokenOf } from '../mcp/direct-request.js';
import { batchRefusal, invalidPostBody } from '../mcp/json-rpc-message.js';
import { TenantPlaces } from './tenant-places.js';
import { resourceUpdatedBytesMin, StreamBacklog, streamCutReport } from './stream-backlog.js';
import { ListenFeeds } from './listen-feeds.js';
import { isJsonObject } from '../../storage/json-object.js';
import { admitMoreCalls } from '../ops/request-admission.js';

export const sessionHeader = 'mcp-session-id';

/**
 * Requests that read no tenant memory: they state the server (`server/discover`, which the 2.x
 * client sends as it connects), or the principal's tools and resource templates. Answered without
 * waiting for the tenant's store: a client's connect and listings need not wait for a big log's
 * replay, which its first call that asks for progress then hears.
 */
const methodsReadingNoMemory: ReadonlySet<string> = new Set(['server/discover', 'tools/list', 'resources/templates/list']);

/**
 * Whether a 2026-era request's store is opened before its handling (requestMemory), so that one
 * that cannot open is an HTTP 503 with Retry-After. Not for a request that reads no memory
 * (methodsReadingNoMemory). Not for one that asked for progress: its store opens inside its
 * call, which hears the open (progress-notifications.ts), and a store that cannot open is then
 * that call's error.
 */
export function opensStoreFirst(body: unknown): boolean {
  if (!isJsonObject(body)) return true;
  const { method, params } = body;
  if (typeof method === 'string' && methodsReadingNoMemory.has(method)) return false;
  return progressTokenOf(params) === undefined;
}

/**
 * Open 2026-era `subscriptions/listen` streams, per process and per tenant: past a bound a listen
 * is refused 503 with Retry-After (tenant-places.ts). Before, clients could open them without end.
 */
export const listenStreamsMax = 4_096;
export const listenStreamsPerTenantMax = 1_024;

/** The places of the listen streams, within `bounds` (tests: fewer than the defaults). */
export function listenStreamPlaces(bounds?: { readonly total: number; readonly perTenant: number }): TenantPlaces {
  return new TenantPlaces({
    totalMax: bounds?.total ?? listenStreamsMax, perTenantMax: bounds?.perTenant ?? listenStreamsPerTenantMax,
    what: 'subscriptions/listen streams', totalName: 'listenStreamsMax', perTenantName: 'listenStreamsPerTenantMax',
  });
}

export interface StreamableRouteOptions {
  readonly surface: McpSurface;
  readonly memoryFor: MemoryFor;
  readonly commitsOf: CommitsOf;
  readonly sessions: SessionTable;
  readonly bodyBytesMax: number;
  /** Places of the open subscriptions/listen streams (listenStreamPlaces). */
  readonly listens: TenantPlaces;
  /** Bytes a listen stream may owe its client before it is cut (streamBacklogBytesMax). */
  readonly streamBacklogBytesMax: number;
  /** A stream cut for owing its client more than streamBacklogBytesMax (for the metrics). Must not throw. */
  readonly onStreamCut?: (tenant: string) => void;
}

export interface StreamableRoute {
  /** Call after authentication; `req.body` is the parsed JSON body (or undefined). */
  serve(req: Request, res: Response, principal: Principal): Promise<void>;
  close(): Promise<void>;
}

/** The resource URIs a (checked) subscriptions/listen request names. */
function listenedUris(body: unknown): string[] {
  const uris = (body as { params?: { notifications?: { resourceSubscriptions?: unknown } } }).params?.notifications?.resourceSubscriptions;
  return Array.isArray(uris) ? uris.filter((uri): uri is string => typeof uri === 'string') : [];
}

/** A 2026-era `subscriptions/listen` POST: a long-lived event stream, not a call. */
export function isListenRequest(body: unknown): boolean {
  return typeof body === 'object' && body !== null && (body as { method?: unknown }).method === 'subscriptions/listen';
}

export function createStreamableRoute(options: StreamableRouteOptions): StreamableRoute {
  const { surface, memoryFor, commitsOf, sessions, bodyBytesMax, listens, streamBacklogBytesMax } = options;
  const perRequestFactory = (ctx: { authInfo?: Parameters<typeof carriedBy>[0] }) => {
    const { principal, memory } = carriedBy(ctx.authInfo);
    return createMemoryServer(surface, { principal, memory, changes: 'none' });
  };
  const onerror = (error: Error) => surface.log.debug({ err: error }, 'mcp http request refused or failed');
  const modern = createMcpHandler(perRequestFactory, { legacy: 'reject', maxRequestBodySize: bodyBytesMax, onerror });
  const serveModern = toNodeHandler(modern, { maxRequestBodySize: bodyBytesMax, onerror });
  /** Open subscriptions/listen streams. */
  const listenHandlers = new Set<McpHttpHandler>();
  /** What each tenant's commits change, worked out once for all its listen streams. */
  const feeds = new ListenFeeds(surface.catalog, commitsOf);

  /** Who hears of an event stream of `tenant` cut for a client that stopped reading (StreamBacklog). */
  const streamCut = (what: string, tenant: string) => streamCutReport(surface.log, what, tenant, streamBacklogBytesMax, options.onStreamCut);

  /**
   * A 2026-era request's memory. The lease taken first (opensStoreFirst) refuses a store that cannot
   * open as an HTTP answer (503) before any MCP handling, and is released with the response; the call's
   * work leases again for its own length (sessionMemory), so a client that drops the POST while
   * its tool call runs (the response closes) does not let the store close under that call.
   */
  async function requestMemory(principal: Principal, res: Response, body: unknown): Promise<LeasedMemory> {
    if (opensStoreFirst(body)) {
      const lease = await memoryFor(principal);
      res.on('close', () => lease.release());
    }
    return sessionMemory(principal, memoryFor, commitsOf);
  }

  /**
   * A listen stream sends changed resource addresses only and reads nothing: its per-request
   * server just states the capabilities. So it holds no lease (its tenant's store may be evicted
   * and reopened under it) and hears the tenant's commits through `commitsOf` (once for all the
   * tenant's streams: ListenFeeds), each once.
   */
  async function serveListen(req: Request, res: Response, principal: Principal): Promise<void> {
    // Bounded first: a refused stream is an HTTP refusal (audited as one), not a listen that was let in.
    const place = listens.open(principal.caller.tenant);
    if ('refusal' in place) {
      res.setHeader('Retry-After', '5');
      sendJsonRpcError(res, 503, -32000, place.refusal);
      return;
    }
    res.on('close', place.release);
    const problem = checkedListen(surface, principal, req.body);
    if (problem !== undefined) {
      // As the SDK's listen router answers a request it refuses: HTTP 200, a JSON-RPC error for its id.
      res.status(200).json({ jsonrpc: '2.0', id: (req.body as { id?: unknown }).id ?? null, error: { code: -32602, message: problem } });
      return;
    }
    const handler = createMcpHandler(perRequestFactory, { legacy: 'reject', maxRequestBodySize: bodyBytesMax, onerror, maxSubscriptions: 1 });
    listenHandlers.add(handler);
    (req as Request & { auth?: unknown }).auth = authInfoOf(principal, sessionMemory(principal, memoryFor, commitsOf));
    // Only the URIs this stream listens to reach its handler (its router would drop the others),
    // each counted as owed to the client until written: a client that stops reading is cut.
    const tenant = principal.caller.tenant;
    const watched = new Set(listenedUris(req.body));
    const backlog = new StreamBacklog(res, streamBacklogBytesMax, streamCut('subscriptions/listen stream', tenant));
    const stopFeed = principal.capabilities.has('read')
      ? feeds.add(tenant, watched, (uri) => {
          if (backlog.owe(resourceUpdatedBytesMin(uri))) handler.notify.resourceUpdated(uri);
        })
      : () => undefined;
    // The stream was let in by this request's token: it ends when that token expires (the client listens again with a fresh one).
    const expiresAtMs = tokenExpiresAtMsOf(principal);
    const cancelExpiry = expiresAtMs === undefined ? undefined : whenTokenExpires(() => expiresAtMs, () => void handler.close());
    res.on('close', () => {
      cancelExpiry?.();
      stopFeed();
      listenHandlers.delete(handler);
      void handler.close();
    });
    await toNodeHandler(handler, { maxRequestBodySize: bodyBytesMax, onerror })(req, res, req.body);
  }

  async function openLegacySession(req: Request, res: Response, principal: Principal): Promise<void> {
    const refusal = sessions.makeRoomFor(principal.caller.tenant);
    if (refusal !== undefined) {
      res.setHeader('Retry-After', '1');
      sendJsonRpcError(res, 503, -32000, refusal);
      return;
    }
    const server = createMemoryServer(surface, { principal, memory: sessionMemory(principal, memoryFor, commitsOf), changes: 'subscribed' });
    let sessionOpened = false;
    const end = () => {
      if (transport.sessionId !== undefined) sessions.remove(transport.sessionId);
    };
    // A POST's answer is one JSON body (one socket write) instead of an SSE stream (headers
    // flushed first, then the event: two writes, two client wake-ups per call). Change
    // notifications go on the session's GET stream; only a call's progress while its tenant's
    // store opens turns its answer into a stream (direct-exchange.ts).
    const transport: SessionTransport = new SessionTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessionOpened = true;
        sessions.add({ id, kind: 'streamable-http', transport, principal, close: () => server.close() });
        sessions.track(id, res, 'call'); // the initialize POST
      },
      onsessionclosed: () => end(),
    }, { bytesMax: streamBacklogBytesMax, onCut: streamCut('session GET stream', principal.caller.tenant) });
    // tools/call straight to the server's tool caller once initialize has been answered.
    transport.directToolCaller = () => (server.getClientVersion() !== undefined ? toolCallerOf(server) : undefined);
    // connect() takes the transport's callbacks over; the server's onclose is ours to chain.
    const closeFeed = server.onclose;
    server.onclose = () => {
      closeFeed?.();
      end();
    };
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res, req.body);
    } finally {
      // An initialize that failed (or threw) never opened a session: do not leak its server.
      if (!sessionOpened) await server.close().catch(() => undefined);
    }
  }

  /**
   * A GET stream of a session starts where its client's last one left off (session-event-store.ts):
   * the Last-Event-ID the SDK transport replays after is set here. False when refused (answered).
   */
  function resumeStream(req: Request, res: Response, sessionId: string, transport: SessionTransport): boolean {
    const header = req.headers['last-event-id'];
    const resumption = transport.events.resumeFrom(typeof header === 'string' ? header : undefined);
    if (resumption.kind === 'malformed') {
      sendJsonRpcError(res, 400, -32000, `Bad Request: ${resumption.message}`);
      return false;
    }
    if (resumption.kind === 'lost') {
      sessions.close(sessionId, 'closing a session whose event stream cannot resume: its events were dropped past the bounds');
      sendJsonRpcError(res, 404, -32001, `Session closed: ${resumption.message}`);
      return false;
    }
    if (resumption.kind === 'replay') req.headers['last-event-id'] = resumption.afterId;
    return true;
  }

  async function serve(req: Request, res: Response, principal: Principal): Promise<void> {
    if (req.method === 'POST' && !isJsonContentType(req.headers['content-type'] ?? null)) {
      sendJsonRpcError(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
      return;
    }
    const sessionId = req.headers[sessionHeader];
    if (typeof sessionId === 'string') {
      const session = sessions.find(sessionId, principal);
      if (session?.kind !== 'streamable-http') {
        sendJsonRpcError(res, 404, -32001, sessionNotFound('start a new one with initialize'));
        return;
      }
      if (req.method === 'GET' && !resumeStream(req, res, sessionId, session.transport)) return;
      const batchRefused = req.method === 'POST' && Array.isArray(req.body) ? batchRefusal(session.transport.protocolVersion) : undefined;
      if (batchRefused !== undefined) {
        sendJsonRpcError(res, 400, -32600, batchRefused);
        return;
      }
      // JSON that is not a JSON-RPC message is an Invalid Request; the SDK transport answers -32700 (Parse error).
      const invalid = req.method === 'POST' && directRequestOf(req.body) === undefined ? invalidPostBody(req.body) : undefined;
      if (invalid !== undefined) {
        sendJsonRpcError(res, 400, -32600, invalid.message, undefined, invalid.id);
        return;
      }
      // Each request of a batch past its first is a call of its own under the tenant's bounds (its POST was admitted as one).
      const batchRequests = req.method === 'POST' && Array.isArray(req.body) ? req.body.filter((m: unknown) => isJSONRPCRequest(m)).length : 0;
      if (batchRequests > 1 && !admitMoreCalls(res, batchRequests - 1)) return;
      sessions.track(sessionId, res, req.method === 'GET' ? 'stream' : 'call');
      // One request on the session: straight to its server, no web Request round trip.
      if (req.method === 'POST' && session.transport.serveDirect(req, res, req.body)) return;
      await session.transport.handleRequest(req, res, req.body);
      return;
    }
    if (await isLegacyRequest(await classificationRequest(req, bodyBytesMax), req.body, { maxRequestBodySize: bodyBytesMax })) {
      if (req.method === 'POST' && isInitializeRequest(req.body)) {
        await openLegacySession(req, res, principal);
      } else {
        sendJsonRpcError(res, 400, -32000, `Bad Request: a 2025-era request needs an ${sessionHeader} header from initialize`);
      }
      return;
    }
    if (isListenRequest(req.body)) {
      await serveListen(req, res, principal);
      return;
    }
    (req as Request & { auth?: unknown }).auth = authInfoOf(principal, await requestMemory(principal, res, req.body));
    await serveModern(req, res, req.body);
  }

  return {
    serve,
    close: async () => {
      await Promise.allSettled([modern.close(), ...[...listenHandlers].map((h) => h.close())]);
      listenHandlers.clear();
    },
  };
}
