/**
 * Sessions of 2025-era clients (sessionful Streamable HTTP and legacy HTTP+SSE): bounded in
 * number, per process and per tenant, bound to the principal that opened them, and closed when
 * idle. A session holds no store between its calls (each takes a lease for its own duration),
 * so its tenant's store may be evicted and reopened under it; still, each session costs a
 * server instance and its subscriptions, so a forgotten one is closed. Clients often end
 * without DELETE (the SDK's close() sends none): at a bound, a session with no call running makes
 * room (its client gets 404 and initializes again, as after the idle close), so leaked sessions
 * never lock new clients out. An open event stream (GET) does not hold a slot against that: SDK
 * clients keep one open for their whole life, so counting it would let live but idle clients, or
 * one user in several organizations, hold every slot.
 */
import type { Response } from 'express';
import type { SessionTransport } from './session-transport.js';
import type { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { Principal } from '../auth/principal.js';
import { tokenExpiresAtMsOf, whenTokenExpires } from '../auth/token-expiry.js';
import type { Logger } from '../log.js';

/** Open 2025-era sessions per process (both kinds together). */
export const legacySessionsMax = 256;
/** Open 2025-era sessions of one tenant: a quarter of the process's, so no tenant takes them all. */
export const legacySessionsPerTenantMax = 64;
/** A session with no request in flight for this long is closed. */
export const legacySessionIdleMs = 30 * 60_000;

export type LegacySession = {
  readonly id: string;
  readonly principal: Principal;
  close(): Promise<void>;
} & (
  | { readonly kind: 'streamable-http'; readonly transport: SessionTransport }
  | { readonly kind: 'sse'; readonly transport: SSEServerTransport }
);

/** The sweeper never runs more often than this. */
export const sweepEveryMsMin = 100;

/** What a request on a session is: a call (POST, DELETE) or an event stream (GET, the SSE stream). */
export type SessionRequestKind = 'call' | 'stream';

interface Entry {
  readonly session: LegacySession;
  /** Calls running on the session: such a session is never closed for room. */
  calls: number;
  /** Event streams open: a connected listener is not idle for the sweep, but may make room. */
  streams: number;
  /** When a call last started or ended (the session's opening counts): the order of making room. */
  lastCallMs: number;
  /** When any request last started or ended: the idle sweep's clock. */
  lastSeenMs: number;
  /**
   * When the newest token seen on the session expires (each request's own token extends it);
   * undefined in local mode. Its event streams end then: the stream was let in by a token.
   */
  tokenExpiresAtMs: number | undefined;
}

/**
 * The same caller with the same rights: a session opened by one principal is invisible to every
 * other. The capabilities count too, because the session's server was built for them (its tool
 * list, its checks): a token whose roles changed since (a role removed in Keycloak) must not keep
 * the old ones through an open session, so its client gets 404 and initializes again.
 */
export function samePrincipal(a: Principal, b: Principal): boolean {
  return a.caller.tenant === b.caller.tenant && a.caller.subject === b.caller.subject && sameCapabilities(a, b);
}

function sameCapabilities(a: Principal, b: Principal): boolean {
  return a.capabilities.size === b.capabilities.size && [...a.capabilities].every((capability) => b.capabilities.has(capability));
}

/** The 404 of a session id unknown to this principal (closed, never opened, another caller's, or opened with other roles). */
export function sessionNotFound(next: string): string {
  return `Session not found for this token (a session serves the tenant, subject and roles that opened it); ${next}`;
}

const tenantOf = (entry: Entry): string => entry.session.principal.caller.tenant;

export class SessionTable {
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly log: Logger,
    readonly sessionsMax = legacySessionsMax,
    readonly idleMs = legacySessionIdleMs,
    readonly perTenantMax = Math.min(legacySessionsPerTenantMax, sessionsMax),
  ) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.max(sweepEveryMsMin, idleMs / 4));
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Room for one more session of `tenant`: at the tenant's bound one of its sessions is closed, at
   * the process's bound one of the tenant holding most (closeOneForRoom says which). The refusal (for a 503)
   * when every session in the way has a call running; undefined when there is room.
   */
  makeRoomFor(tenant: string): string | undefined {
    const ofTenant = [...this.entries.entries()].filter(([, e]) => tenantOf(e) === tenant);
    if (ofTenant.length >= this.perTenantMax && !this.closeOneForRoom(ofTenant)) {
      return `tenant ${tenant} has ${ofTenant.length} open sessions, each with a call running (legacySessionsPerTenantMax = ${this.perTenantMax}); retry later`;
    }
    if (this.entries.size >= this.sessionsMax && !this.closeOneForRoom([...this.entries.entries()])) {
      return `too many open sessions, each with a call running (legacySessionsMax = ${this.sessionsMax}); retry later`;
    }
    return undefined;
  }

  /**
   * Closes a session with no call running. The tenant holding the most of the candidates yields
   * first, so at the process bound one organization (or one user in several) cannot push out
   * another tenant's few sessions. Within a tenant, one with no event stream first (most likely a
   * client gone without DELETE), the one idle longest; else the listener whose last call is oldest.
   */
  private closeOneForRoom(candidates: readonly [string, Entry][]): boolean {
    const held = new Map<string, number>();
    for (const [, entry] of candidates) held.set(tenantOf(entry), (held.get(tenantOf(entry)) ?? 0) + 1);
    let chosen: [string, Entry] | undefined;
    const before = (a: Entry, b: Entry) => {
      const heldA = held.get(tenantOf(a))!;
      const heldB = held.get(tenantOf(b))!;
      if (heldA !== heldB) return heldA > heldB;
      return (a.streams === 0) !== (b.streams === 0) ? a.streams === 0 : a.lastCallMs < b.lastCallMs;
    };
    for (const candidate of candidates) {
      if (candidate[1].calls === 0 && (chosen === undefined || before(candidate[1], chosen[1]))) chosen = candidate;
    }
    if (chosen === undefined) return false;
    this.closeEntry(chosen[0], chosen[1], chosen[1].streams === 0 ? 'closing the longest-idle session to make room' : 'closing the listening session idle longest to make room');
    return true;
  }

  private closeEntry(id: string, entry: Entry, why: string): void {
    this.entries.delete(id);
    this.log.info({ session: id, kind: entry.session.kind, tenant: entry.session.principal.caller.tenant }, why);
    entry.session.close().catch((error: unknown) => this.log.warn({ err: error, session: id }, 'closing a session failed'));
  }

  add(session: LegacySession): void {
    if (this.entries.has(session.id)) throw new Error(`session id ${session.id} reused`);
    const nowMs = Date.now();
    this.entries.set(session.id, { session, calls: 0, streams: 0, lastCallMs: nowMs, lastSeenMs: nowMs, tokenExpiresAtMs: tokenExpiresAtMsOf(session.principal) });
  }

  /** The session, only for the principal that opened it; that principal's token now counts for its streams. */
  find(id: string, principal: Principal): LegacySession | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined || !samePrincipal(entry.session.principal, principal)) return undefined;
    const expiresAtMs = tokenExpiresAtMsOf(principal);
    if (expiresAtMs !== undefined && entry.tokenExpiresAtMs !== undefined) entry.tokenExpiresAtMs = Math.max(entry.tokenExpiresAtMs, expiresAtMs);
    return entry.session;
  }

  /** Closes the session now (its client gets 404 and initializes again); `why` is logged. */
  close(id: string, why: string): void {
    const entry = this.entries.get(id);
    if (entry !== undefined) this.closeEntry(id, entry, why);
  }

  remove(id: string): void {
    this.entries.delete(id);
  }

  /**
   * Counts `res` as a call or an event stream on the session until it closes. A stream ends when
   * the newest token seen on the session has expired: a 2025-era client's GET stream (its SDK
   * client reconnects with its current token), or the whole legacy SSE session, whose stream it is.
   */
  track(id: string, res: Response, kind: SessionRequestKind): void {
    const end = this.begin(id, kind);
    const entry = this.entries.get(id);
    const cancelExpiry = kind === 'stream' && entry?.tokenExpiresAtMs !== undefined
      ? whenTokenExpires(() => entry.tokenExpiresAtMs!, () => this.endStreamsOf(id, entry))
      : undefined;
    res.on('close', () => {
      cancelExpiry?.();
      end();
    });
  }

  private endStreamsOf(id: string, entry: Entry): void {
    if (this.entries.get(id) !== entry) return;
    if (entry.session.kind === 'sse') this.closeEntry(id, entry, 'closing an SSE session whose access token expired');
    else entry.session.transport.sdk.closeStandaloneSSEStream();
  }

  /** Counts one call or stream on the session; the function returned ends it (once). */
  begin(id: string, kind: SessionRequestKind): () => void {
    const entry = this.entries.get(id);
    if (entry === undefined) return () => undefined;
    const touch = () => {
      entry.lastSeenMs = Date.now();
      if (kind === 'call') entry.lastCallMs = entry.lastSeenMs;
    };
    if (kind === 'call') entry.calls += 1;
    else entry.streams += 1;
    touch();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (kind === 'call') entry.calls -= 1;
      else entry.streams -= 1;
      touch();
    };
  }

  private sweep(nowMs: number): void {
    for (const [id, entry] of this.entries) {
      if (entry.calls === 0 && entry.streams === 0 && nowMs - entry.lastSeenMs > this.idleMs) this.closeEntry(id, entry, 'closing idle session');
    }
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    const sessions = [...this.entries.values()].map((e) => e.session);
    this.entries.clear();
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}
