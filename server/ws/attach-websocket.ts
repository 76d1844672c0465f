/**
 * Live row subscriptions over WebSocket on an existing HTTP server: `/ws` and
 * `/t/:tenant/ws`. At the upgrade: path, Host and Origin checks (a browser page must not reach
 * a loopback server it was not allowed to), the subprotocol (format), then the same
 * `authenticate` as `/mcp`. A request with an Authorization header is authenticated here
 * and refused with the proper HTTP status; one without (browsers cannot set headers) is
 * upgraded and must send `{"type":"auth","token"}` first, within authTimeoutMs. Local mode's
 * `authenticate` returns the local principal for every request: no token needed.
 */
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { validateHostHeader, validateOriginHeader } from '@modelcontextprotocol/server';
import { WebSocketServer, type WebSocket } from 'ws';
import { MemoryError } from '../../storage/errors.js';
import { rawRequestPath } from '../auth/protected-resource-metadata.js';
import type { Principal } from '../auth/principal.js';
import { loopbackHostnames, originHostname } from '../http/http-server.js';
import { isLoopbackAddress } from '../http/loopback.js';
import type { HttpRefusalEvent } from '../http/refusal-audit.js';
import { isRefusal, type Authenticate, type MemoryFor, type MemoryLease } from '../http/seams.js';
import { TenantPlaces } from '../http/tenant-places.js';
import { silentLogger, type Logger } from '../log.js';
import { wsClose } from './close-codes.js';
import { Connection, type ConnectionContext, type WsRequestEvent } from './connection.js';
import type { ExposedTables } from './exposed-tables.js';
import { wsLimitsDefault, type WsLimits } from './limits.js';
import { subprotocols, type WireFormat } from './wire-format.js';

export const wsPathName = 'ws';
const wsPathPattern = /^\/(?:t\/([^/]+)\/)?ws$/;

export interface WebSocketDeps {
  /** The same function `/mcp` uses (server/http/seams.ts). */
  readonly authenticate: Authenticate;
  readonly memoryFor: MemoryFor;
  /** Tables clients may subscribe to, each with the capability it needs. */
  readonly tables: ExposedTables;
  readonly limits?: Partial<WsLimits>;
  readonly log?: Logger;
  /** Origins (or bare hostnames) browsers may connect from, besides loopback ones (as the HTTP server's). */
  readonly allowedOrigins?: readonly string[];
  /** Host header names accepted; default: loopback names when the server listens on loopback, else no check. */
  readonly allowedHosts?: readonly string[];
  /** Connection opens and closes, for logs, metrics and tests. Must not throw. */
  readonly observe?: (event: WsEvent) => void;
  /** Each request of an identified client (connect, auth, subscribe, unsubscribe), for the audit. Must not throw. */
  readonly onRequest?: (event: WsRequestEvent) => void;
  /** Each upgrade of a WebSocket endpoint refused (but 401s, which authentication records), for the audit. Must not throw. */
  readonly onRefusal?: (event: HttpRefusalEvent) => void;
}

export type WsEvent =
  | { readonly kind: 'open'; readonly tenant: string | undefined; readonly authenticated: boolean }
  | { readonly kind: 'close'; readonly tenant: string | undefined; readonly code: number; readonly reason: string };

export interface WebSocketServing {
  readonly connections: number;
  /** The most messages waiting to be sent to one connection (ioboxx_subscription_lag_transactions). */
  subscriptionLagMax(): number;
  /**
   * The tenant's store is being evicted for another tenant, or it failed: its connections close
   * (1013) and let go of their leases, instead of holding the store (and its slot) open, or a
   * failed store from being reopened.
   */
  releaseStore(tenant: string, why: 'evicted' | 'failed'): void;
  /** Stops accepting upgrades, closes every connection with 1001 (going away) and waits for them to end. */
  close(): Promise<void>;
}

export function attachWebSocket(server: Server, deps: WebSocketDeps): WebSocketServing {
  const limits: WsLimits = { ...wsLimitsDefault, ...deps.limits };
  const log = deps.log ?? silentLogger();
  const connections = new Set<Connection>();
  const dirty = new Set<Connection>();
  let flushScheduled = false;
  let closing = false;
  let upgrading = 0;

  const flushAll = (): void => {
    flushScheduled = false;
    const batch = [...dirty];
    dirty.clear();
    for (const connection of batch) connection.flush();
  };

  // An authenticated connection holds a place of its tenant as long as its lease (tenant-places.ts).
  const places = new TenantPlaces({
    totalMax: limits.connectionsMax, perTenantMax: limits.connectionsPerTenantMax,
    what: 'WebSocket connections', totalName: 'connectionsMax', perTenantName: 'connectionsPerTenantMax',
  });
  /**
   * Per tenant, the leases being granted: a store evicted in the moment its lease is granted
   * (opened for this connection while another tenant waits for the slot) must be let go too,
   * though no connection holds it yet; kept, it held the slot for the connection's life.
   */
  const granting = new Map<string, Set<{ evicted: boolean }>>();
  const memoryFor: MemoryFor = async (principal) => {
    const tenant = principal.caller.tenant;
    const place = places.open(tenant);
    if ('refusal' in place) throw new MemoryError('busy', place.refusal);
    const grant = { evicted: false };
    const pending = granting.get(tenant) ?? new Set();
    granting.set(tenant, pending.add(grant));
    try {
      const lease = await deps.memoryFor(principal);
      if (grant.evicted) {
        lease.release();
        throw new MemoryError('busy', "the tenant's store was let go as this connection opened (evicted for another tenant, or failed)", 'connect again in a moment');
      }
      return { memory: lease.memory, release: () => (lease.release(), place.release()) };
    } catch (error) {
      place.release();
      throw error;
    } finally {
      pending.delete(grant);
      if (pending.size === 0 && granting.get(tenant) === pending) granting.delete(tenant);
    }
  };

  const ctx: ConnectionContext = {
    ...(deps.onRequest !== undefined && { onRequest: deps.onRequest }),
    limits,
    tables: deps.tables,
    log,
    authenticate: deps.authenticate,
    memoryFor,
    // One flush for every connection after the tick that published a batch: the committing
    // calls' acknowledgements go out first, and a batch's transactions leave together.
    scheduleFlush(connection) {
      dirty.add(connection);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
    },
    closed(connection, code, reason) {
      connections.delete(connection);
      dirty.delete(connection);
      deps.observe?.({ kind: 'close', tenant: connection.tenant, code, reason });
    },
  };

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.inboundMessageBytesMax,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (offered) => chosenSubprotocol(offered) ?? false,
  });

  const pinger = setInterval(() => {
    for (const connection of connections) {
      if (!connection.alive) {
        connection.terminate();
        continue;
      }
      connection.alive = false;
      connection.ping();
    }
  }, limits.pingIntervalMs);
  pinger.unref();

  // Decided at the first upgrade (the server listens by then); getsockname per upgrade is not free.
  let hostsChecked: { hosts: readonly string[] | undefined } | undefined;
  const hostsAllowed = (): readonly string[] | undefined => {
    if (deps.allowedHosts !== undefined) return deps.allowedHosts;
    if (hostsChecked === undefined) {
      const address = server.address() as AddressInfo | null;
      hostsChecked = { hosts: address && isLoopbackAddress(address.address) ? loopbackHostnames : undefined };
    }
    return hostsChecked.hosts;
  };
  const originsAllowed = [...loopbackHostnames, ...(deps.allowedOrigins ?? []).map(originHostname)];

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const rawPath = rawRequestPath(req);
    const match = rawPath === undefined ? null : wsPathPattern.exec(rawPath);
    if (!match) return refuse(socket, 404, { error: 'not_found', error_description: 'WebSocket endpoints are /ws and /t/{tenant}/ws' });
    let principal: Principal | undefined;
    /** Refuses the upgrade; the audit hears of it (a 401 is authentication's to record). */
    const refused = (status: number, answer: unknown, headers?: Readonly<Record<string, string>>): void => {
      refuse(socket, status, answer, headers);
      if (status === 401 || deps.onRefusal === undefined) return;
      const reason = (answer as { error_description?: unknown } | null)?.error_description;
      try {
        deps.onRefusal({ principal, method: 'GET', path: rawPath!, status, reason: typeof reason === 'string' ? reason : STATUS_CODES[status] ?? 'refused' });
      } catch (error) {
        log.error({ err: error }, 'websocket onRefusal hook threw');
      }
    };
    if (closing) return refused(503, { error: 'unavailable', error_description: 'the server is shutting down' });
    const hosts = hostsAllowed();
    if (hosts !== undefined) {
      const host = validateHostHeader(req.headers.host, [...hosts]);
      if (!host.ok) return refused(403, { error: 'forbidden', error_description: host.message });
    }
    const origin = validateOriginHeader(req.headers.origin, originsAllowed);
    if (!origin.ok) return refused(403, { error: 'forbidden', error_description: origin.message });
    const offered = offeredSubprotocols(req);
    const chosen = chosenSubprotocol(offered);
    if (offered.size > 0 && chosen === undefined) {
      return refused(400, { error: 'invalid_request', error_description: `supported subprotocols: ${[...subprotocols.keys()].join(', ')}` });
    }
    const format: WireFormat = chosen === undefined ? 'json' : subprotocols.get(chosen)!;
    if (connections.size + upgrading >= limits.connectionsMax) {
      return refused(503, { error: 'unavailable', error_description: `at most ${limits.connectionsMax} WebSocket connections (connectionsMax)` }, { 'Retry-After': '5' });
    }
    const pathTenant = match[1];
    upgrading++;
    let authenticated: { principal: Principal; lease: MemoryLease } | undefined;
    try {
      const who = await deps.authenticate(req);
      if (isRefusal(who)) {
        // No credentials at all: a browser, which sends its token in the first message.
        if (!(who.status === 401 && !hasAuthorizationHeader(req))) return refused(who.status, who.body, who.headers);
      } else {
        principal = who;
        if (pathTenant !== undefined && pathTenant !== who.caller.tenant) {
          return refused(403, { error: 'insufficient_scope', error_description: `this principal acts for tenant ${who.caller.tenant}, not ${pathTenant}` });
        }
        const lease = await memoryFor(who);
        authenticated = { principal: who, lease };
      }
    } catch (error) {
      const unavailable = error instanceof MemoryError && (error.code === 'busy' || error.code === 'unavailable');
      if (!unavailable) log.error({ err: error, path: rawPath }, 'websocket upgrade failed');
      return refused(unavailable ? 503 : 500, { error: unavailable ? 'unavailable' : 'internal_error', error_description: unavailable ? (error as Error).message : 'internal error' });
    } finally {
      upgrading--;
    }
    if (socket.destroyed || closing) {
      authenticated?.lease.release();
      socket.destroy();
      return;
    }
    let opened = false;
    // `ws` refuses a malformed handshake (no Sec-WebSocket-Key, another version…) with its own
    // 400 and never calls back: the lease and the tenant's place go with the socket then.
    socket.once('close', () => {
      if (!opened) authenticated?.lease.release();
    });
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      opened = true;
      const connection = new Connection(ws, socket, req, format, pathTenant, ctx, authenticated);
      connections.add(connection);
      deps.observe?.({ kind: 'open', tenant: connection.tenant, authenticated: authenticated !== undefined });
    });
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // The socket may fail while we authenticate; without a listener that would crash the process.
    socket.on('error', () => socket.destroy());
    upgrade(req, socket, head).catch((error: unknown) => {
      log.error({ err: error }, 'websocket upgrade crashed');
      socket.destroy();
    });
  };
  server.on('upgrade', onUpgrade);

  return {
    get connections() {
      return connections.size;
    },
    subscriptionLagMax() {
      let lag = 0;
      for (const connection of connections) lag = Math.max(lag, connection.lagMessages);
      return lag;
    },
    releaseStore(tenant, why) {
      for (const grant of granting.get(tenant) ?? []) grant.evicted = true;
      const reason = why === 'evicted'
        ? "the tenant's store was evicted for another tenant (openTenantsMax); reconnect with after"
        : "the tenant's store failed (a write or an fdatasync) and is reopened once let go; reconnect with after";
      for (const connection of [...connections]) {
        if (connection.tenant === tenant) connection.close(wsClose.tryAgainLater, reason);
      }
    },
    async close() {
      closing = true;
      server.off('upgrade', onUpgrade);
      clearInterval(pinger);
      const open = [...connections];
      for (const connection of open) connection.close(wsClose.goingAway, 'the server is shutting down; reconnect with after');
      connections.clear();
      // Each ends within closeGraceMs (terminated if the peer does not answer the close frame).
      await Promise.all(open.map((connection) => connection.ended));
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

function offeredSubprotocols(req: IncomingMessage): Set<string> {
  const header = req.headers['sec-websocket-protocol'];
  if (header === undefined) return new Set();
  return new Set(header.split(',').map((p) => p.trim()).filter((p) => p.length > 0));
}

function chosenSubprotocol(offered: ReadonlySet<string>): string | undefined {
  for (const p of offered) if (subprotocols.has(p)) return p;
  return undefined;
}

function hasAuthorizationHeader(req: IncomingMessage): boolean {
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'authorization') return true;
  return false;
}

/** An HTTP answer instead of the upgrade (the same shapes /mcp answers with). */
function refuse(socket: Duplex, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`];
  const merged: Record<string, string> = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers };
  for (const [name, value] of Object.entries(merged)) if (name.toLowerCase() !== 'content-length') lines.push(`${name}: ${value}`);
  lines.push(`Content-Length: ${Buffer.byteLength(text)}`, 'Connection: close', '', text);
  if (!socket.destroyed) socket.end(lines.join('\r\n'));
}
