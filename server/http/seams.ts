/**
 * The two functions the HTTP server is given rather than owns: who is calling
 * (`authenticate`) and their tenant's memory (`memoryFor`). Local mode passes a fixed local
 * principal and one open memory; token mode passes server/auth's `authenticateRequest` and
 * the tenant registry.
 */
import type { IncomingMessage } from 'node:http';
import type { TenantMemory } from '../../tools/memory.js';
import type { Principal } from '../auth/principal.js';

/** An answer that refuses the request before any MCP handling (shape of server/auth's HttpAuthFailure). */
export interface HttpRefusal {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: unknown;
}

/** The request's tenant hint (path `/t/:tenant/...`) is in the URL; the function reads it there. */
export type Authenticate = (req: IncomingMessage) => Promise<Principal | HttpRefusal>;

export interface MemoryLease {
  readonly memory: TenantMemory;
  /** Once, when the request or session that took the lease is over. */
  release(): void;
}

export type MemoryFor = (principal: Principal) => Promise<MemoryLease>;

export function isRefusal(value: Principal | HttpRefusal): value is HttpRefusal {
  return (value as HttpRefusal).status !== undefined;
}

/** Local mode: everyone who can reach the (loopback) socket is the local principal. */
export function fixedPrincipal(principal: Principal): Authenticate {
  return async () => principal;
}

/** One memory for the whole process (local mode): leases are free and never close it. */
export function singleMemory(memory: TenantMemory): MemoryFor {
  return async (principal) => {
    if (principal.caller.tenant !== memory.tenant) {
      throw new Error(`principal of tenant ${principal.caller.tenant} reached the single memory of tenant ${memory.tenant}`);
    }
    return { memory, release: () => undefined };
  };
}
