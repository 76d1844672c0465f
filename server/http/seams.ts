/**
 * The functions the HTTP server is given rather than owns: who is calling (`authenticate`),
 * their tenant's memory (`memoryFor`) and their tenant's commits (`commitsOf`, for sessions
 * that outlive a store's close and reopen). Tests pass a fixed principal and one open memory;
 * the process passes server/auth's `authenticateRequest`, the tenant registry and its
 * TenantCommits.
 */
import type { IncomingMessage } from 'node:http';
import type { Unsubscribe } from '../../storage/store.js';
import type { TenantMemory } from '../../tools/memory.js';
import type { Principal } from '../auth/principal.js';
import type { CommitListener, LeasedMemory, MemoryLease } from '../mcp/memory-source.js';
import { forwardedBy, isLoopbackAddress } from './loopback.js';

export type { MemoryLease };

/** An answer that refuses the request before any MCP handling (shape of server/auth's HttpAuthFailure). */
export interface HttpRefusal {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
}

/** The request's tenant hint (path `/t/:tenant/...`) is in the URL; the function reads it there. */
export type Authenticate = (req: IncomingMessage) => Promise<Principal | HttpRefusal>;

export type MemoryFor = (principal: Principal) => Promise<MemoryLease>;

/** `tenant`'s durable commits from now on, across its store's closes and reopens (TenantCommits.listen). */
export type CommitsOf = (tenant: string, listener: CommitListener) => Unsubscribe;

/**
 * A 2025-era session's memory: a lease per request (between calls the session holds none, so
 * its tenant's store may close, and the next call reopens it) and its tenant's commits. A
 * subscriptions/listen stream's server has it too: it makes no request, so it holds no lease.
 */
export function sessionMemory(principal: Principal, memoryFor: MemoryFor, commitsOf: CommitsOf): LeasedMemory {
  return {
    lease: () => memoryFor(principal),
    onCommit: (listener) => commitsOf(principal.caller.tenant, listener),
  };
}

export function isRefusal(value: Principal | HttpRefusal): value is HttpRefusal {
  return (value as HttpRefusal).status !== undefined;
}

/**
 * Local mode has no token to check and grants every capability: whoever calls from this machine
 * (over loopback) is the local principal. A peer on any other interface is refused, so a server
 * bound past loopback (IOBOXX_HTTP_HOST=0.0.0.0) without an issuer does not hand its memory to
 * the network; before, it served every peer as the local principal.
 */
export function fixedPrincipal(principal: Principal): Authenticate {
  return async (req) => {
    if (!isLoopbackAddress(req.socket?.remoteAddress)) return localModeRefusal;
    // A proxy that does not say so is OPERATIONS' warning: never put one in front.
    const proxyHeader = forwardedBy(req.headers);
    return proxyHeader === undefined ? principal : forwardedRefusal(proxyHeader);
  };
}

const localModeText = 'this server runs in local mode (no IOBOXX_OIDC_ISSUER): it serves callers on its own machine (loopback) only';
const localModeHint = 'set IOBOXX_OIDC_ISSUER and IOBOXX_OIDC_AUDIENCE to serve others with access tokens';

function localModeRefusalSaying(description: string): HttpRefusal {
  return Object.freeze({
    status: 403,
    headers: Object.freeze({ 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }),
    body: Object.freeze({ error: 'forbidden', error_description: description }),
  });
}

const localModeRefusal = localModeRefusalSaying(`${localModeText}; ${localModeHint}`);

const forwardedRefusal = (header: string) =>
  localModeRefusalSaying(`${localModeText}, and this request was forwarded by a proxy (${header} header) for a caller who may be anywhere; ${localModeHint}`);

/** One memory for the whole process (local mode): leases are free and never close it. */
export function singleMemory(memory: TenantMemory): MemoryFor {
  return async (principal) => {
    if (principal.caller.tenant !== memory.tenant) {
      throw new Error(`principal of tenant ${principal.caller.tenant} reached the single memory of tenant ${memory.tenant}`);
    }
    return { memory, release: () => undefined };
  };
}

/** The commits of singleMemory's one memory, which never closes. */
export function singleMemoryCommits(memory: TenantMemory): CommitsOf {
  return (tenant, listener) => {
    if (tenant !== memory.tenant) throw new Error(`commits of tenant ${tenant} asked of the single memory of tenant ${memory.tenant}`);
    return memory.store.onCommit(listener);
  };
}
