/**
 * One WebSocket client: its principal and tenant memory lease, its live queries, and the
 * ordered stream of messages it is sent. The rules it keeps:
 *  - durable before visible: row events come only from the engine's hub (published after
 *    fdatasync) or from the commitlog; an initial result is released only once durable;
 *  - no gap, no duplicate: a query's initial result is read at offset X with its hub
 *    subscription taken in the same synchronous step, so exactly the transactions > X follow;
 *  - one `tx` message per transaction, in offset order, with every query it changed;
 *  - bounded: a consumer that lets more than sendQueueBytesMax pile up is cut off (4008);
 *  - the tenant is the principal's, fixed for the connection; each table needs its capability.
 * Client messages are handled one at a time, in order; only a fresh token's expiry takes
 * effect on arrival (a long resume ahead of it must not let the old token close the connection).
 */
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { RowChange } from '../../storage/changes.js';
import { MemoryError } from '../../storage/errors.js';
import { sharesOffsets } from '../../storage/history.js';
import type { Row } from '../../storage/schema.js';
import type { Unsubscribe } from '../../storage/store.js';
import type { Principal } from '../auth/principal.js';
import type { Logger } from '../log.js';
import { isRefusal, type Authenticate, type HttpRefusal, type MemoryFor, type MemoryLease } from '../http/seams.js';
import { closeReason, wsClose, type WsCloseCode } from './close-codes.js';
import type { ExposedTables } from './exposed-tables.js';
import { startingEventsMax, type WsLimits } from './limits.js';
import { tokenExpiresAtMsOf, whenTokenExpires } from '../auth/token-expiry.js';
import { errorMessage, parseClientMessage, type ClientMessage, type QuerySpec } from './protocol.js';
import { compileQuery, type CompiledQuery } from './query.js';
import { queryChangesOf } from './query-changes.js';
import { SendQueue, type Corkable } from './send-queue.js';
import { PendingEvents } from './pending-events.js';
import { encodeTxMessage, queryChanges, type QueryChanges } from './tx-message.js';
import { decodeClientMessage, encodeMessage, protocolVersion, wireRow, type WireFormat } from './wire-format.js';

/**
 * What a client did on its connection, for the audit (DESIGN invariant 7): it authenticated
 * (at the upgrade or by an `auth` message), subscribed to tables, unsubscribed, sent a message
 * refused as malformed or dropped `busy` (past inboundPendingMax); allowed or refused. Pings are
 * keep-alives, not requests: not reported.
 */
export interface WsRequestEvent {
  readonly principal: Principal;
  /** `ws/message`: a message of no known type, refused. */
  readonly action: 'ws/connect' | 'ws/auth' | 'ws/subscribe' | 'ws/unsubscribe' | 'ws/message';
  /** The tables subscribed to, the query ids unsubscribed, or the path tenant refused ('-' when none). */
  readonly target: string;
  readonly outcome: string;
}

/**
 * What a message refused as malformed asked for, as far as it can be read: a subscribe names the
 * tables it asked for, an unknown type itself (`ws/message`, target the type), an unreadable frame `-`.
 */
function requestAsked(raw: unknown): { action: WsRequestEvent['action']; target: string } {
  const message = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  const type = message['type'];
  if (type === 'subscribe') {
    const queries = Array.isArray(message['queries']) ? (message['queries'] as unknown[]) : [];
    const tables = queries.map((q) => (typeof q === 'object' && q !== null ? (q as Record<string, unknown>)['table'] : undefined));
    return { action: 'ws/subscribe', target: [...new Set(tables.filter((t): t is string => typeof t === 'string'))].join(',') || '-' };
  }
  if (type === 'unsubscribe' || type === 'auth') return { action: `ws/${type}`, target: '-' };
  return { action: 'ws/message', target: typeof type === 'string' && type.length > 0 ? type : '-' };
}

export interface ConnectionContext {
  /** Each request of an identified client, once answered. Must not throw. */
  readonly onRequest?: (event: WsRequestEvent) => void;
  readonly limits: WsLimits;
  readonly tables: ExposedTables;
  readonly log: Logger;
  readonly authenticate: Authenticate;
  readonly memoryFor: MemoryFor;
  /** Ask for `flush()` once the current burst of commits has been published. */
  scheduleFlush(connection: Connection): void;
  closed(connection: Connection, code: number, reason: string): void;
}

/** A client message as read off the wire: its decoded form (for the audit), then the message or why it was refused. */
type Read = { readonly raw: unknown; readonly message: ClientMessage } | { readonly raw: unknown; readonly refusal: unknown };

/** The query ids a message names (a subscribe's, an unsubscribe's), so that its refusal can name them too. */
function queryIdsOf(read: Read): readonly string[] | undefined {
  if (!('message' in read)) return undefined; // a malformed message names no query
  const message = read.message;
  return message.type === 'subscribe' ? message.queries.map((query) => query.id) : message.type === 'unsubscribe' ? message.ids : undefined;
}

interface Group {
  starting: boolean;
  readonly buffered: { query: LiveQuery; offset: number; changes: readonly RowChange[] }[];
}

interface LiveQuery {
  readonly id: string;
  readonly compiled: CompiledQuery;
  readonly group: Group;
  /** Events at or below this offset are already in the query's initial result (or replay). */
  baseOffset: number;
  unsubscribe: Unsubscribe;
  ended: boolean;
}

export class Connection {
  private principal: Principal | undefined;
  private lease: MemoryLease | undefined;
  private readonly queries = new Map<string, LiveQuery>();
  /** Row events not yet sent (flushed after the publishing tick). */
  private readonly pending = new PendingEvents();
  private readonly sendQueue: SendQueue;
  private inbound: Promise<void> = Promise.resolve();
  private inboundPending = 0;
  private authTimer: NodeJS.Timeout | undefined;
  /** When the connection closes with 4401: the latest expiry of a token verified for its principal. */
  private tokenExpiresAtMs: number | undefined;
  private cancelExpiry: (() => void) | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private startingEvents = 0;
  private closedCode: number | undefined;
  alive = true;
  /** Settles once the socket is closed (handshake done, or terminated after closeGraceMs). */
  readonly ended: Promise<void>;

  constructor(
    private readonly ws: WebSocket,
    /** The upgraded TCP socket under `ws` (corked around each flush). */
    socket: Corkable,
    private readonly req: IncomingMessage,
    readonly format: WireFormat,
    private readonly pathTenant: string | undefined,
    private readonly ctx: ConnectionContext,
    authenticated: { principal: Principal; lease: MemoryLease } | undefined,
  ) {
    this.sendQueue = new SendQueue(ws, socket, ctx.limits.sendQueueBytesMax, ctx.limits.socketBufferBytesMax, format === 'msgpack');
    ws.on('message', (data: Buffer, isBinary: boolean) => this.receive(data, isBinary));
    ws.on('pong', () => (this.alive = true));
    this.ended = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('close', (code: number, reason: Buffer) => this.cleanup(code, reason.toString('utf8')));
    ws.on('error', (error: Error & { code?: string }) => {
      // `ws` closes with 1009 itself for an oversized message, after emitting this error.
      ctx.log.debug({ err: error, tenant: this.tenant }, 'websocket error');
    });
    if (authenticated) {
      this.become(authenticated.principal, authenticated.lease);
      this.report(authenticated.principal, 'ws/connect', '-', 'ok');
      this.send({ type: 'hello', protocol: protocolVersion, format, authenticated: true, ...this.identity(), limits: this.publicLimits() });
    } else {
      this.send({ type: 'hello', protocol: protocolVersion, format, authenticated: false, authTimeoutMs: ctx.limits.authTimeoutMs, limits: this.publicLimits() });
      this.authTimer = setTimeout(
        () => this.close(wsClose.authTimeout, `no auth message within ${ctx.limits.authTimeoutMs} ms (authTimeoutMs)`),
        ctx.limits.authTimeoutMs,
      );
    }
  }

  get tenant(): string | undefined {
    return this.principal?.caller.tenant;
  }

  get isClosed(): boolean {
    return this.closedCode !== undefined;
  }

  get queryCount(): number {
    return this.queries.size;
  }

  /** Messages (transactions, mostly) waiting to be sent to this client: its lag. */
  get lagMessages(): number {
    return this.sendQueue.queuedMessages;
  }

  // ---------------------------------------------------------------- inbound

  private receive(data: Buffer, isBinary: boolean): void {
    if (this.isClosed) return;
    const read = this.read(data, isBinary);
    if (this.inboundPending >= this.ctx.limits.inboundPendingMax) {
      const dropped = new MemoryError('busy', `more than ${this.ctx.limits.inboundPendingMax} messages are waiting to be handled; this one was dropped`, 'wait for answers before sending more, then send it again');
      // A dropped request is still a request of an identified client (a dropped ping is a keep-alive).
      const asked = requestAsked(read.raw);
      if (this.principal !== undefined && !(asked.action === 'ws/message' && asked.target === 'ping')) this.report(this.principal, asked.action, asked.target, dropped.code);
      this.send(errorMessage(dropped, queryIdsOf(read)));
      return;
    }
    this.inboundPending++;
    // A fresh token is verified on arrival, its expiry applied at once; the rest of the auth waits its
    // turn. A resume's replay moves only as fast as the client reads: behind it, the old token would expire.
    const renewal = 'message' in read && read.message.type === 'auth' && this.principal !== undefined ? this.renewExpiry(read.message.token) : undefined;
    // Only the Buffer waits in the queue (decoded again when handled): a queued message costs its bytes, no more.
    this.inbound = this.inbound
      .then(() => (this.isClosed ? undefined : this.handle(data, isBinary, renewal)))
      .catch((error: unknown) => {
        if (!(error instanceof MemoryError)) this.ctx.log.error({ err: error, tenant: this.tenant }, 'websocket message failed');
        if (!this.isClosed) this.send(errorMessage(error));
      })
      .finally(() => this.inboundPending--);
  }

  private read(data: Buffer, isBinary: boolean): Read {
    let raw: unknown;
    try {
      raw = decodeClientMessage(data, isBinary);
      return { raw, message: parseClientMessage(raw, this.ctx.limits) };
    } catch (refusal) {
      return { raw, refusal };
    }
  }

  /** `renewal`: an auth message's token, verified on arrival (renewExpiry). */
  private async handle(data: Buffer, isBinary: boolean, renewal: Promise<Principal | HttpRefusal> | undefined): Promise<void> {
    const read = this.read(data, isBinary);
    if (!('message' in read)) {
      const error = read.refusal;
      if (this.principal === undefined) return this.close(wsClose.badRequest, `authenticate first: ${(error as Error).message}`);
      // Refused before it was handled, still a request of an identified client: audited as the others.
      const asked = requestAsked(read.raw);
      this.report(this.principal, asked.action, asked.target, error instanceof MemoryError ? error.code : 'invalid_argument');
      throw error;
    }
    const message = read.message;
    if (message.type === 'auth') return this.authenticateWith(message.token, renewal);
    if (this.principal === undefined) {
      return this.close(wsClose.badRequest, 'authenticate first: the first message must be {"type":"auth","token":...}');
    }
    switch (message.type) {
      case 'subscribe':
        return this.subscribe(message.queries, message.after, message.history);
      case 'unsubscribe':
        return this.unsubscribe(message.ids);
      case 'ping':
        this.send({ type: 'pong', offset: this.lease!.memory.store.durableOffset, history: this.lease!.memory.store.history.id });
        return;
    }
  }

  // ---------------------------------------------------------------- identity

  /**
   * Verifies a fresh token on arrival; one for the connection's tenant and subject moves the
   * expiry to its own, if later (two renewals may verify out of order). Nothing else: a refusal,
   * capabilities, the answer and the audit wait for the message's turn (authenticateWith), which
   * takes this same verification (a token verified twice would be audited, when refused, twice).
   */
  private renewExpiry(token: string): Promise<Principal | HttpRefusal> {
    const verifying = this.ctx.authenticate(requestWithBearer(this.req, token));
    verifying.then((who) => {
      if (this.isClosed || isRefusal(who)) return;
      const principal = this.principal!;
      if (who.caller.tenant !== principal.caller.tenant || who.caller.subject !== principal.caller.subject) return;
      this.extendExpiry(who);
    }, () => undefined); // a failed verification is reported when the message is handled
    return verifying;
  }

  private async authenticateWith(token: string, renewal: Promise<Principal | HttpRefusal> | undefined): Promise<void> {
    const who = await (renewal ?? this.ctx.authenticate(requestWithBearer(this.req, token)));
    if (this.isClosed) return;
    if (isRefusal(who)) return this.close(closeCodeForRefusal(who), refusalReason(who));
    if (this.pathTenant !== undefined && who.caller.tenant !== this.pathTenant) {
      this.report(who, 'ws/auth', this.pathTenant, 'forbidden');
      return this.close(wsClose.forbidden, `this principal acts for tenant ${who.caller.tenant}, not ${this.pathTenant}`);
    }
    if (this.principal === undefined) {
      let lease: MemoryLease;
      try {
        lease = await this.ctx.memoryFor(who);
      } catch (error) {
        this.ctx.log.warn({ err: error, tenant: who.caller.tenant }, 'websocket: tenant memory unavailable');
        this.report(who, 'ws/auth', '-', 'unavailable');
        // busy: a bound (the tenant's connections, the open stores) says itself what it is.
        const busy = error instanceof MemoryError && error.code === 'busy';
        return this.close(wsClose.tryAgainLater, `${busy ? '' : 'tenant memory unavailable: '}${(error as Error).message}`);
      }
      if (this.isClosed) return lease.release();
      clearTimeout(this.authTimer);
      this.become(who, lease);
    } else {
      // A fresh token for a long connection: same tenant and subject, capabilities as it says now.
      if (who.caller.tenant !== this.principal.caller.tenant || who.caller.subject !== this.principal.caller.subject) {
        this.report(who, 'ws/auth', '-', 'forbidden');
        return this.close(wsClose.forbidden, 'a new token must be for the same tenant and subject; open a new connection instead');
      }
      this.become(who, this.lease!);
      this.dropForbiddenQueries();
    }
    this.send({ type: 'authenticated', ...this.identity() });
    this.report(who, 'ws/auth', '-', 'ok');
  }

  private report(principal: Principal, action: WsRequestEvent['action'], target: string, outcome: string): void {
    const onRequest = this.ctx.onRequest;
    if (onRequest === undefined) return;
    try {
      onRequest({ principal, action, target, outcome });
    } catch (error) {
      this.ctx.log.error({ err: error }, 'websocket onRequest hook threw');
    }
  }

  private become(principal: Principal, lease: MemoryLease): void {
    this.principal = principal;
    this.lease = lease;
    this.extendExpiry(principal);
  }

  /** The connection lives until the latest expiry of its principal's verified tokens; local mode never expires. */
  private extendExpiry(principal: Principal): void {
    const expiresAtMs = tokenExpiresAtMsOf(principal);
    if (expiresAtMs === undefined || this.isClosed) return;
    this.tokenExpiresAtMs = Math.max(this.tokenExpiresAtMs ?? expiresAtMs, expiresAtMs);
    // One timer per connection: it reads the deadline when it fires and waits on if it moved.
    this.cancelExpiry ??= whenTokenExpires(() => this.tokenExpiresAtMs!, () =>
      this.close(wsClose.unauthorized, 'the access token expired; send a fresh one in an auth message before it does, or reconnect'));
  }

  private identity(): Record<string, unknown> {
    const principal = this.principal!;
    const tables = [...this.ctx.tables.values()]
      .filter((t) => principal.capabilities.has(t.capability))
      .map((t) => ({ name: t.schema.name, key: t.schema.primaryKey, columns: t.schema.columns.map((c) => ({ name: c.name, type: c.type })) }));
    const expiresAtMs = tokenExpiresAtMsOf(principal);
    return {
      tenant: principal.caller.tenant,
      subject: principal.caller.subject,
      capabilities: [...principal.capabilities].sort(),
      offset: this.lease!.memory.store.durableOffset,
      history: this.lease!.memory.store.history.id,
      ...(expiresAtMs !== undefined ? { tokenExpiresAtMs: expiresAtMs } : {}),
      tables,
    };
  }

  private publicLimits(): Record<string, number> {
    const l = this.ctx.limits;
    return {
      inboundMessageBytesMax: l.inboundMessageBytesMax,
      sendQueueBytesMax: l.sendQueueBytesMax,
      initialRowsMax: l.initialRowsMax,
      initialResultBytesMax: l.initialResultBytesMax,
      resumeTxMax: l.resumeTxMax,
      queriesPerSubscribeMax: l.queriesPerSubscribeMax,
      queriesPerConnectionMax: l.queriesPerConnectionMax,
    };
  }

  private dropForbiddenQueries(): void {
    const dropped: string[] = [];
    for (const q of this.queries.values()) {
      const exposed = this.ctx.tables.get(q.compiled.table)!;
      if (!this.principal!.capabilities.has(exposed.capability)) dropped.push(q.id);
    }
    if (dropped.length === 0) return;
    this.endQueries(dropped);
    this.send(errorMessage(new MemoryError('forbidden', 'the new token no longer grants reading these tables; their queries ended'), dropped));
  }

  // ---------------------------------------------------------------- subscribe

  private compile(specs: readonly QuerySpec[]): CompiledQuery[] {
    const ids = specs.map((s) => s.id);
    const taken = ids.filter((id) => this.queries.has(id));
    if (taken.length > 0) throw new MemoryError('invalid_argument', `query ids already in use: ${taken.join(', ')}`, 'unsubscribe them first, or pick new ids');
    if (this.queries.size + specs.length > this.ctx.limits.queriesPerConnectionMax) {
      throw new MemoryError('limit_exceeded', `a connection holds at most ${this.ctx.limits.queriesPerConnectionMax} queries`);
    }
    return specs.map((spec) => {
      const exposed = this.ctx.tables.get(spec.table);
      // An unexposed table and a missing one look the same: nothing to learn by probing.
      if (!exposed) throw new MemoryError('not_found', `no table ${spec.table}`);
      if (!this.principal!.capabilities.has(exposed.capability)) {
        throw new MemoryError('forbidden', `subscribing to ${spec.table} needs the ${exposed.capability} capability`);
      }
      return compileQuery(exposed.schema, spec.where);
    });
  }

  private async subscribe(specs: readonly QuerySpec[], after: number | undefined, history: string | undefined): Promise<void> {
    const ids = specs.map((s) => s.id);
    const tables = [...new Set(specs.map((spec) => spec.table))].join(',');
    let outcome = 'ok';
    try {
      const compiled = this.compile(specs);
      if (after !== undefined && this.queries.size > 0) {
        throw new MemoryError('invalid_argument', 'after (resume) is accepted only by the first subscribe of a connection', 'resume every query in one subscribe right after connecting');
      }
      const store = this.lease!.memory.store;
      const group: Group = { starting: true, buffered: [] };
      const live = specs.map((spec, i): LiveQuery => ({ id: spec.id, compiled: compiled[i]!, group, baseOffset: Number.MAX_SAFE_INTEGER, unsubscribe: () => undefined, ended: false }));
      try {
        // A consumer's history that this store's does not continue up to `after` (a restore of an older backup forked before it) had other transactions at those offsets: a fresh result.
        const sameTransactions = history === undefined || sharesOffsets(store.history, history, after ?? -1);
        if (after !== undefined && sameTransactions && (await this.logHolds(after))) {
          // Resume: subscribe now (everything <= durable was published already), replay after+1..durable.
          const durable = store.durableOffset;
          this.register(live, durable);
          if (await this.replay(live, after, durable)) return this.goLive(group);
        }
        await this.freshResult(live, after !== undefined);
        this.goLive(group);
      } catch (error) {
        // The group never goes live: what it buffered no longer counts toward startingEventsMax.
        this.startingEvents -= group.buffered.splice(0).length;
        this.endQueries(live.filter((q) => this.queries.get(q.id) === q).map((q) => q.id));
        for (const q of live) q.unsubscribe();
        throw error;
      }
    } catch (error) {
      outcome = error instanceof MemoryError ? error.code : 'internal';
      if (this.isClosed) return;
      if (!(error instanceof MemoryError)) this.ctx.log.error({ err: error, tenant: this.tenant }, 'websocket subscribe failed');
      this.send(errorMessage(error, ids));
    } finally {
      if (this.principal !== undefined) this.report(this.principal, 'ws/subscribe', tables, outcome);
    }
  }

  /** The log still holds every transaction after `after`, and they are few enough to replay. */
  private async logHolds(after: number): Promise<boolean> {
    const store = this.lease!.memory.store;
    if (after > store.durableOffset || store.durableOffset - after > this.ctx.limits.resumeTxMax) return false;
    if (after === store.durableOffset) return true;
    try {
      return (await store.readTx(after + 1)) !== undefined && store.durableOffset - after <= this.ctx.limits.resumeTxMax;
    } catch {
      return false;
    }
  }

  /** Takes the hub subscriptions; events at or below `baseOffset` are dropped. Synchronous. */
  private register(live: readonly LiveQuery[], baseOffset: number): void {
    const store = this.lease!.memory.store;
    for (const q of live) {
      q.baseOffset = baseOffset;
      if (this.queries.get(q.id) === q) continue;
      try {
        const c = q.compiled;
        q.unsubscribe = store.subscribe(c.table, c.matches, (offset, changes) => this.onEvents(q, offset, changes), c.equals ? { equals: c.equals } : {});
      } catch (error) {
        if (error instanceof MemoryError) throw error;
        throw new MemoryError('limit_exceeded', `cannot subscribe: ${(error as Error).message}`, 'try again later');
      }
      this.queries.set(q.id, q);
    }
  }

  /** Replays after+1..to from the log, paced to the reader; false when the log no longer holds them. */
  private async replay(live: readonly LiveQuery[], after: number, to: number): Promise<boolean> {
    const store = this.lease!.memory.store;
    this.send({ type: 'subscribed', offset: after, history: store.history.id, resumed: true, reset: false, queries: live.map((q) => this.describe(q)) });
    for (let offset = after + 1; offset <= to; offset++) {
      let tx;
      try {
        tx = await store.readTx(offset);
      } catch (error) {
        this.ctx.log.warn({ err: error, tenant: this.tenant, offset }, 'websocket resume: log read failed; sending a fresh result');
        tx = undefined;
      }
      if (this.isClosed) return true;
      if (tx === undefined) return false;
      const perQuery: QueryChanges[] = [];
      for (const q of live) {
        const changes = queryChangesOf(tx, q.compiled);
        if (changes.length > 0) perQuery.push(queryChanges(q.id, q.compiled.schema, changes));
      }
      if (perQuery.length > 0) {
        this.sendEncoded(encodeTxMessage(this.format, offset, perQuery));
        await this.sendQueue.roomForMore();
      }
    }
    return true;
  }

  /** Initial rows at offset X, the hub subscriptions taken in the same synchronous read. */
  private async freshResult(live: readonly LiveQuery[], reset: boolean): Promise<void> {
    const store = this.lease!.memory.store;
    const limits = this.ctx.limits;
    const { offset, rows } = await store.read((view) => {
      let scanned = 0;
      let total = 0;
      const rows: Row[][] = live.map((q) => {
        const found: Row[] = [];
        for (const row of view.table(q.compiled.table).scan(q.compiled.scan)) {
          if (++scanned > limits.initialScanRowsMax) {
            throw new MemoryError('limit_exceeded', `the initial result needs more than ${limits.initialScanRowsMax} rows examined (initialScanRowsMax)`, 'add an equality on a key or indexed column');
          }
          if (!q.compiled.matches(row)) continue;
          if (++total > limits.initialRowsMax) {
            throw new MemoryError('limit_exceeded', `more than ${limits.initialRowsMax} rows match (initialRowsMax)`, 'narrow the where, or split the queries over several subscribes');
          }
          found.push(row);
        }
        return found;
      });
      this.register(live, view.offset);
      return { offset: view.offset, rows };
    });
    if (this.isClosed) return;
    const message = {
      type: 'subscribed', offset, history: store.history.id, resumed: false, reset,
      queries: live.map((q, i) => ({ ...this.describe(q), rows: rows[i]!.map((row) => wireRow(q.compiled.schema, row, this.format)) })),
    };
    const data = encodeMessage(this.format, message);
    const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    if (bytes > limits.initialResultBytesMax) {
      throw new MemoryError('limit_exceeded', `the initial result is ${bytes} bytes, more than ${limits.initialResultBytesMax} (initialResultBytesMax)`, 'narrow the where, or split the queries over several subscribes');
    }
    // The other queries' transactions up to X, published while this read waited to be durable,
    // go out first: after `subscribed` at X a client takes no tx at or below X (nor resumes them).
    this.flush(offset);
    this.sendEncoded(data);
  }

  private describe(q: LiveQuery): { id: string; table: string; key: readonly string[] } {
    return { id: q.id, table: q.compiled.table, key: q.compiled.schema.primaryKey };
  }

  private goLive(group: Group): void {
    group.starting = false;
    this.startingEvents -= group.buffered.length;
    for (const { query, offset, changes } of group.buffered.splice(0)) this.addPending(query, offset, changes);
  }

  private unsubscribe(named: readonly string[]): void {
    const ids = [...new Set(named)]; // an id named twice is ended and answered once
    const known = ids.filter((id) => this.queries.has(id));
    const unknown = ids.filter((id) => !this.queries.has(id));
    this.endQueries(known);
    if (known.length > 0) this.send({ type: 'unsubscribed', ids: known });
    if (unknown.length > 0) this.send(errorMessage(new MemoryError('not_found', 'no such queries on this connection'), unknown));
    this.report(this.principal!, 'ws/unsubscribe', ids.join(','), unknown.length > 0 ? 'not_found' : 'ok');
  }

  private endQueries(ids: readonly string[]): void {
    for (const id of ids) {
      const q = this.queries.get(id);
      if (!q) continue;
      q.ended = true;
      q.unsubscribe();
      this.queries.delete(id); // its pending events are skipped at flush (ended)
    }
  }

  // ---------------------------------------------------------------- events out

  private onEvents(q: LiveQuery, offset: number, changes: readonly RowChange[]): void {
    if (q.ended || this.isClosed) return;
    if (q.group.starting) {
      q.group.buffered.push({ query: q, offset, changes });
      if (++this.startingEvents > startingEventsMax) {
        this.close(wsClose.slowConsumer, `more than ${startingEventsMax} changes arrived while a subscribe was starting`);
      }
      return;
    }
    this.addPending(q, offset, changes);
  }

  private addPending(q: LiveQuery, offset: number, changes: readonly RowChange[]): void {
    if (offset <= q.baseOffset || q.ended) return;
    this.pending.add(q, offset, changes);
    this.ctx.scheduleFlush(this);
  }

  /** Sends one `tx` message per pending transaction (up to `throughOffset`), in offset order, in one socket write. */
  flush(throughOffset?: number): void {
    if (this.pending.size === 0 || this.isClosed) return;
    this.sendQueue.batch(() => this.pending.take((offset, queries) => this.sendEncoded(encodeTxMessage(this.format, offset, queries)), throughOffset));
  }

  private send(message: object): boolean {
    return this.sendEncoded(encodeMessage(this.format, message));
  }

  private sendEncoded(data: string | Buffer): boolean {
    if (this.isClosed) return false;
    if (this.sendQueue.send(data)) return true;
    this.close(wsClose.slowConsumer, `slow consumer: more than ${this.ctx.limits.sendQueueBytesMax} bytes waited to be sent; reconnect with after`);
    return false;
  }

  // ---------------------------------------------------------------- closing

  /** Ends the connection: queued messages are dropped, the close frame follows what the socket holds. */
  close(code: WsCloseCode, reason: string): void {
    if (this.isClosed) return;
    this.sendQueue.drop();
    this.cleanup(code, reason);
    this.ws.close(code, closeReason(reason));
    // A peer that never reads never answers the close frame either.
    this.graceTimer = setTimeout(() => this.ws.terminate(), this.ctx.limits.closeGraceMs);
    this.graceTimer.unref();
  }

  ping(): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  terminate(): void {
    this.cleanup(wsClose.goingAway, 'terminated');
    this.ws.terminate();
  }

  private cleanup(code: number, reason: string): void {
    if (this.closedCode !== undefined) {
      if (this.ws.readyState === this.ws.CLOSED) clearTimeout(this.graceTimer);
      return;
    }
    this.closedCode = code;
    this.sendQueue.drop();
    clearTimeout(this.authTimer);
    this.cancelExpiry?.();
    this.endQueries([...this.queries.keys()]);
    this.pending.clear();
    this.lease?.release();
    this.ctx.closed(this, code, reason);
  }
}

/** The upgrade request with this token as its Authorization header: one authentication path for both. */
export function requestWithBearer(req: IncomingMessage, token: string): IncomingMessage {
  const rawHeaders: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() !== 'authorization') rawHeaders.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  }
  rawHeaders.push('Authorization', `Bearer ${token}`);
  const view = Object.create(req) as IncomingMessage;
  Object.defineProperties(view, {
    rawHeaders: { value: rawHeaders },
    headers: { value: { ...req.headers, authorization: `Bearer ${token}` } },
  });
  return view;
}

export function closeCodeForRefusal(refusal: HttpRefusal): WsCloseCode {
  switch (refusal.status) {
    case 400:
      return wsClose.badRequest;
    case 401:
      return wsClose.unauthorized;
    case 403:
      return wsClose.forbidden;
    default:
      return wsClose.tryAgainLater;
  }
}

export function refusalReason(refusal: HttpRefusal): string {
  const body = refusal.body as { error?: unknown; error_description?: unknown } | string | undefined;
  if (typeof body === 'string') return body;
  const description = typeof body?.error_description === 'string' ? body.error_description : undefined;
  const error = typeof body?.error === 'string' ? body.error : `status ${refusal.status}`;
  return description ? `${error}: ${description}` : error;
}
