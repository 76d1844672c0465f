/**
 * The HTTP server: Streamable HTTP on `/mcp` and `/t/:tenant/mcp`, legacy HTTP+SSE on
 * `/sse` + `/messages` (also under `/t/:tenant/`), bound to 127.0.0.1 unless told
 * otherwise. Browsers are kept out by Host and Origin checks (DNS rebinding); callers are
 * identified by the `authenticate` seam before anything touches a tenant's memory.
 */
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { hostHeaderValidation, originValidation } from '@modelcontextprotocol/express';
import { admissionMiddleware, tenantByAuthentication, type CallAdmission } from '../ops/request-admission.js';
import type { InFlightCalls } from '../ops/in-flight.js';
import { MemoryError } from '../../storage/errors.js';
import type { Principal } from '../auth/principal.js';
import type { McpSurface } from '../mcp/surface.js';
import { toolArgumentsBytesMax } from '../mcp/limits.js';
import { errorBodyOf, protocolMessageOf, retryLaterCode } from '../mcp/error-mapping.js';
import { tokenCharsMax } from '../auth/token-verifier.js';
import { sendBodyNotMessage, sendJsonRpcError } from './json-rpc-error.js';
import { isRefusal, type Authenticate, type CommitsOf, type MemoryFor } from './seams.js';
import { legacySessionIdleMs, legacySessionsMax, SessionTable } from './session-table.js';
import { createSseRoute } from './sse-route.js';
import { createStreamableRoute, isListenRequest, listenStreamPlaces } from './streamable-route.js';
import { streamBacklogBytesMax as streamBacklogBytesMaxDefault } from './stream-backlog.js';
import { corsForAllowedOrigins } from './cors.js';
import { expressMessageClasses, fastCallHandler } from './fast-call.js';
import { allowOnly, mcpMethods } from './allowed-methods.js';
import { auditingRefusals, noteAuthenticationRefusal, type HttpRefusalEvent } from './refusal-audit.js';

/** Idle keep-alive connections live this long (above typical proxy idle timeouts of 60 s). */
export const keepAliveTimeoutMs = 65_000;

/** A request body past this is refused with 413 before parsing; above toolArgumentsBytesMax so
 * an oversized tool call still gets its precise limit_exceeded answer. */
export const httpBodyBytesMax = toolArgumentsBytesMax + 256 * 1024;

/**
 * A request's header block past this is refused by node (431, no body). Room for the longest
 * token the verifier reads plus the other headers: with node's default (16 KiB) a token near
 * tokenCharsMax got that bare 431 instead of the verifier's 401 `token_too_large`.
 */
export const httpHeaderBytesMax = tokenCharsMax + 16 * 1024;

export const loopbackHostnames: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

export interface HttpServerOptions {
  readonly surface: McpSurface;
  readonly authenticate: Authenticate;
  readonly memoryFor: MemoryFor;
  /** Sessions hear their tenant's commits here, across the store's closes and reopens. */
  readonly commitsOf: CommitsOf;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0 (any free port); the CLI passes IOBOXX_HTTP_PORT. */
  readonly port?: number;
  /** Origins (or bare hostnames) browsers may call from, besides loopback ones. */
  readonly allowedOrigins?: readonly string[];
  /** Host header names accepted when binding a non-loopback address (default: no Host check there). */
  readonly allowedHosts?: readonly string[];
  readonly bodyBytesMax?: number;
  /** Close a 2025-era session after this long without a request (default legacySessionIdleMs). */
  readonly sessionIdleMs?: number;
  /** Tests: fewer sessions than legacySessionsMax (and per tenant, legacySessionsPerTenantMax). */
  readonly sessionsMax?: { readonly total: number; readonly perTenant: number };
  /** Tests: fewer subscriptions/listen streams than listenStreamsMax (and per tenant, listenStreamsPerTenantMax). */
  readonly listenStreamsMax?: { readonly total: number; readonly perTenant: number };
  /** Tests: a shorter sseKeepAliveMs (how often a quiet HTTP+SSE stream carries a comment). */
  readonly sseKeepAliveMs?: number;
  /** Tests: a smaller streamBacklogBytesMax (what an event stream may owe its client before it is cut). */
  readonly streamBacklogBytesMax?: number;
  /** An event stream cut for owing its client more than streamBacklogBytesMax, with its tenant. Must not throw. */
  readonly onStreamCut?: (tenant: string) => void;
  /**
   * Admission of each MCP call (POST /mcp, /messages, also under /t/:tenant/) under its tenant's
   * limits, once authenticated and before its body is read; mounted after the Host and Origin
   * guards, before `mount`'s routes, and taken by the fast path of POST /mcp too.
   */
  readonly admission?: CallAdmission;
  /**
   * Mount further routes (/metrics, /hooks/keycloak, ...) after the Host and Origin guards.
   * They must not answer POST /mcp: the fast path (fast-call.ts) takes those past express.
   */
  readonly mount?: (app: Express) => void;
  /** Mount public routes browsers may fetch cross-origin (RFC 9728 metadata, /healthz) before the guards. */
  readonly mountBeforeGuards?: (app: Express) => void;
  /**
   * The process's calls in flight (graceful shutdown): each MCP POST is one until its answer is
   * written, so the shutdown's drain waits for it; once closed, every MCP request gets 503 +
   * Retry-After (sessions included) instead of starting work the shutdown would cut.
   */
  readonly calls?: InFlightCalls;
  /**
   * For the audit: each MCP request refused at the HTTP level (4xx but 401, 5xx), once its answer is
   * sent, and each GET (an event stream) or DELETE (a session's end), as its headers go out.
   */
  readonly onRefusal?: (event: HttpRefusalEvent) => void;
}

export interface HttpServing {
  /** Base URL, e.g. http://127.0.0.1:8787 (append /mcp or /sse). */
  readonly url: string;
  /** For upgrades (WebSocket) and introspection. */
  readonly server: http.Server;
  close(): Promise<void>;
}

/** `https://app.example:8443` and `app.example` both mean the hostname app.example. */
export function originHostname(entry: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\/\*$/.test(entry)) return entry; // `<scheme>://*` (browser extensions), kept as is
  if (!entry.includes('://')) return entry;
  const { hostname } = new URL(entry);
  return hostname.includes(':') ? `[${hostname}]` : hostname;
}

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || host === '[::1]';
}

type Handler = (req: Request, res: Response, principal: Principal) => Promise<void>;

/** Streamable HTTP (both eras) and the legacy HTTP+SSE POST endpoint: the routes MCP calls come to. */
const mcpRoutes = ['/mcp', '/t/:tenant/mcp'];
const messagesRoutes = ['/messages', '/t/:tenant/messages'];
const sseRoutes = ['/sse', '/t/:tenant/sse'];
/** The legacy SSE transport: GET opens the stream, POST /messages sends on it. */
const sseMethods: readonly string[] = ['GET'];
const messagesMethods: readonly string[] = ['POST'];

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServing> {
  const { surface, authenticate, memoryFor, commitsOf } = options;
  const host = options.host ?? '127.0.0.1';
  const bodyBytesMax = options.bodyBytesMax ?? httpBodyBytesMax;
  const log = surface.log;
  const sessions = new SessionTable(log, options.sessionsMax?.total ?? legacySessionsMax, options.sessionIdleMs ?? legacySessionIdleMs, options.sessionsMax?.perTenant);
  const listens = listenStreamPlaces(options.listenStreamsMax);
  const streamBacklogBytesMax = options.streamBacklogBytesMax ?? streamBacklogBytesMaxDefault;
  const streamable = createStreamableRoute({ surface, memoryFor, commitsOf, sessions, bodyBytesMax, listens, streamBacklogBytesMax, ...(options.onStreamCut && { onStreamCut: options.onStreamCut }) });
  const sse = createSseRoute({
    surface, memoryFor, commitsOf, sessions, calls: options.calls, streamBacklogBytesMax,
    ...(options.onStreamCut && { onStreamCut: options.onStreamCut }),
    ...(options.sseKeepAliveMs !== undefined && { keepAliveMs: options.sseKeepAliveMs }),
  });

  const app = express();
  app.disable('x-powered-by');
  options.mountBeforeGuards?.(app);
  const allowedHostnames = isLoopback(host) ? [...loopbackHostnames] : options.allowedHosts !== undefined ? [...options.allowedHosts] : undefined;
  if (allowedHostnames !== undefined) app.use(hostHeaderValidation(allowedHostnames));
  // Requests without Origin (every non-browser client) pass; a browser's must be allowed.
  const allowedOriginHostnames = [...loopbackHostnames, ...(options.allowedOrigins ?? []).map(originHostname)];
  app.use(originValidation(allowedOriginHostnames));
  // Each answers a browser's preflight before authentication, naming the methods its endpoint serves.
  app.options(sseRoutes, corsForAllowedOrigins(sseMethods));
  app.options(messagesRoutes, corsForAllowedOrigins(messagesMethods));
  app.use(corsForAllowedOrigins());

  // Each call is admitted on the very routes that serve it, matched as express matches them (any
  // case, an optional trailing slash): a path pattern of its own once missed `/MCP` and `/mcp/`,
  // which express served unadmitted, past the tenant's limits.
  if (options.admission !== undefined) {
    app.post([...mcpRoutes, ...messagesRoutes], admissionMiddleware(options.admission, tenantByAuthentication(authenticate), () => true));
  }
  options.mount?.(app);

  const json = express.json({ limit: bodyBytesMax });

  /** Who is calling, before any body is read: nothing is spent on an unauthenticated request. */
  const identify = async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const who = await authenticate(req);
      if (isRefusal(who)) {
        noteAuthenticationRefusal(res);
        res.status(who.status).set(who.headers).send(typeof who.body === 'string' ? who.body : JSON.stringify(who.body));
        return;
      }
      // Set before the tenant check too: the audit records that refusal in the caller's own tenant.
      res.locals['principal'] = who;
      const pathTenant = req.params['tenant'];
      if (typeof pathTenant === 'string' && pathTenant !== who.caller.tenant) {
        // The authenticator chose the tenant; a path naming another one is never served.
        sendJsonRpcError(res, 403, -32000, `this principal acts for tenant ${who.caller.tenant}, not ${pathTenant}`);
        return;
      }
      next();
    } catch (error) {
      next(error);
    }
  };

  /**
   * Runs the handler for the identified principal; a failure becomes a JSON-RPC-shaped answer.
   * A POST is a call in flight until its response closes (a subscriptions/listen stream is not
   * a call; the answer to a POST /messages goes on its SSE stream, and sse-route counts it there).
   */
  const serving =
    (handler: Handler) =>
    async (req: Request, res: Response): Promise<void> => {
      try {
        const end = options.calls?.begin(); // throws unavailable once the shutdown began
        if (end !== undefined) {
          if (req.method === 'POST' && !isListenRequest(req.body)) res.once('close', end);
          else end();
        }
        await handler(req, res, res.locals['principal'] as Principal);
      } catch (error) {
        // busy: this tenant is over its limits (retryable, 429 + Retry-After); unavailable: shutting down or a store
        // down (a failed store's lease too: classified as the tools classify it, not a 500).
        const { body } = errorBodyOf(error);
        const status = body.code === 'busy' ? 429 : body.code === 'unavailable' ? 503 : 500;
        if (status === 500) {
          log.error({ err: error, path: req.path }, 'http request failed');
          sendJsonRpcError(res, 500, -32603, 'Internal server error');
          return;
        }
        const retryAfterMs = (error as { retryAfterMs?: unknown }).retryAfterMs;
        res.setHeader('Retry-After', String(Math.max(1, Math.ceil((typeof retryAfterMs === 'number' ? retryAfterMs : 1000) / 1000))));
        // A refusal carries the tool errors' stable code and hint (what to do), and says to retry later as a resource request's does.
        sendJsonRpcError(res, status, retryLaterCode, protocolMessageOf(body), { code: body.code, ...(body.hint !== undefined && { hint: body.hint }) });
      }
    };

  const serveMcp = serving((req, res, principal) => streamable.serve(req, res, principal));
  app.all(mcpRoutes, identify, allowOnly(mcpMethods), json, serveMcp);
  app.get(
    sseRoutes,
    identify,
    // Express gives a HEAD to this GET route: it would open a session (one of the bounded slots) and a
    // stream it can never read, and wait unanswered. Refused here as the other methods are below.
    allowOnly(sseMethods),
    // Express routes /sse in any case and with a trailing slash: each spelling's client posts to the messages route.
    serving((req, res, principal) => sse.openStream(req, res, principal, req.path.replace(/\/sse\/?$/i, '/messages'))),
  );
  app.post(messagesRoutes, identify, json, serving((req, res, principal) => sse.postMessage(req, res, principal)));
  // Their other methods (HEAD of /sse is refused in its GET route above).
  app.all(sseRoutes, identify, allowOnly(sseMethods));
  app.all(messagesRoutes, identify, allowOnly(messagesMethods));

  // Anything else: a JSON 404 naming what is served (express's own is an HTML page).
  app.use((req: Request, res: Response) => {
    res.status(404).json({
      error: 'not_found',
      message: `nothing is served at ${req.method} ${req.path}: MCP is on /mcp (or /t/{tenant}/mcp), legacy SSE on /sse, WebSocket on /ws`,
    });
  });

  const answerError = (error: unknown, req: Request, res: Response, next: NextFunction) => {
    const type = (error as { type?: unknown } | null)?.type;
    if (type === 'entity.too.large') {
      sendJsonRpcError(res, 413, -32000, `request body is larger than ${bodyBytesMax} bytes (httpBodyBytesMax)`);
    } else if (type === 'entity.parse.failed') {
      sendBodyNotMessage(res, (error as { body?: unknown }).body as string | undefined); // body-parser keeps the text it refused
    } else if (isClientError(error) && !res.headersSent) {
      // The body parser's other refusals (charset, content-encoding, ...): the client's to fix, with its words.
      sendJsonRpcError(res, error.status, -32600, `Invalid request: ${error.message}`);
    } else if (res.headersSent) {
      next(error);
    } else {
      log.error({ err: error, path: req.path }, 'http request failed');
      sendJsonRpcError(res, 500, -32603, 'Internal server error');
    }
  };
  app.use(answerError);

  const handler = fastCallHandler({
    app, authenticate, admission: options.admission, allowedHostnames, bodyBytesMax, serveMcp,
    // Past a sent answer express's final handler ends the response: the fast path just closes it.
    answerError: (error, req, res) => answerError(error, req, res, () => res.destroy()),
  });
  const onRefusal = options.onRefusal;
  const server = http.createServer(
    { ...expressMessageClasses(app), maxHeaderSize: httpHeaderBytesMax },
    onRefusal === undefined ? handler : auditingRefusals(handler, onRefusal),
  );
  // Keep idle keep-alive connections well past a long event-loop pause (the embedded database's
  // start blocks it for seconds): a 5 s default closes sockets a client is already writing to.
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.headersTimeout = keepAliveTimeoutMs + 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  log.info({ url }, 'http server listening');

  return {
    url,
    server,
    close: async () => {
      await Promise.allSettled([sessions.closeAll(), streamable.close()]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** An error the body parser marked as the client's (http-errors: `expose`, a 4xx status). */
function isClientError(error: unknown): error is { status: number; message: string } {
  const e = error as { status?: unknown; expose?: unknown; message?: unknown } | null;
  return e?.expose === true && typeof e.status === 'number' && e.status >= 400 && e.status < 500 && typeof e.message === 'string';
}
