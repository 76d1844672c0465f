/**
 * Sessions of 2025-era clients (sessionful Streamable HTTP and legacy HTTP+SSE): bounded in
 * number, bound to the principal that opened them, and closed when idle. A session holds a
 * memory lease, so a forgotten session must not pin a tenant's store forever.
 */
import type { Response } from 'express';
import type { SessionTransport } from './session-transport.js';
import type { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { Principal } from '../auth/principal.js';
import type { Logger } from '../log.js';

/** Open 2025-era sessions per process (both kinds together). */
export const legacySessionsMax = 256;
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

interface Entry {
  readonly session: LegacySession;
  openRequests: number;
  lastSeenMs: number;
}

/** The same caller: a session opened by one principal is invisible to every other. */
export function samePrincipal(a: Principal, b: Principal): boolean {
  return a.caller.tenant === b.caller.tenant && a.caller.subject === b.caller.subject;
}

export class SessionTable {
  private readonly entries = new Map<string, Entry>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly log: Logger,
    readonly sessionsMax = legacySessionsMax,
    readonly idleMs = legacySessionIdleMs,
  ) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.max(sweepEveryMsMin, idleMs / 4));
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  get full(): boolean {
    return this.entries.size >= this.sessionsMax;
  }

  add(session: LegacySession): void {
    if (this.entries.has(session.id)) throw new Error(`session id ${session.id} reused`);
    this.entries.set(session.id, { session, openRequests: 0, lastSeenMs: Date.now() });
  }

  /** The session, only for the principal that opened it. */
  find(id: string, principal: Principal): LegacySession | undefined {
    const entry = this.entries.get(id);
    return entry !== undefined && samePrincipal(entry.session.principal, principal) ? entry.session : undefined;
  }

  remove(id: string): void {
    this.entries.delete(id);
  }

  /** Counts `res` as activity on the session until it closes. */
  track(id: string, res: Response): void {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    entry.openRequests += 1;
    entry.lastSeenMs = Date.now();
    res.on('close', () => {
      entry.openRequests -= 1;
      entry.lastSeenMs = Date.now();
    });
  }

  private sweep(nowMs: number): void {
    for (const [id, entry] of this.entries) {
      if (entry.openRequests === 0 && nowMs - entry.lastSeenMs > this.idleMs) {
        this.entries.delete(id);
        this.log.info({ session: id, kind: entry.session.kind }, 'closing idle session');
        entry.session.close().catch((error: unknown) => this.log.warn({ err: error, session: id }, 'closing idle session failed'));
      }
    }
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    const sessions = [...this.entries.values()].map((e) => e.session);
    this.entries.clear();
    await Promise.allSettled(sessions.map((s) => s.close()));
  }
}
