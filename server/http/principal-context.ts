/**
 * Hands the authenticated principal and its tenant's memory from the HTTP route to the
 * server factory through the SDK's pass-through `authInfo` (the SDK never derives it from
 * headers). The token itself is never put here.
 */
import type { AuthInfo } from '@modelcontextprotocol/server';
import type { Principal } from '../auth/principal.js';
import type { MemorySource } from '../mcp/memory-source.js';

interface Carried {
  readonly principal: Principal;
  readonly memory: MemorySource;
}

const carriedKey = 'ioboxx';

export function authInfoOf(principal: Principal, memory: MemorySource): AuthInfo {
  return {
    token: '',
    clientId: principal.caller.subject,
    scopes: [...principal.capabilities],
    extra: { [carriedKey]: { principal, memory } satisfies Carried },
  };
}

export function carriedBy(authInfo: AuthInfo | undefined): Carried {
  const carried = authInfo?.extra?.[carriedKey] as Carried | undefined;
  // Every route sets it before the handler runs; reaching here without it is a wiring bug.
  if (carried === undefined) throw new Error('MCP request reached the factory without an authenticated principal');
  return carried;
}
