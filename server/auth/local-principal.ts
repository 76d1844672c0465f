/**
 * The embedded local mode (no issuer configured): one local tenant, every capability. Only for
 * a process whose single user is whoever started it (stdio desktop clients, a loopback dev
 * server); never serve it on a shared network.
 */
import { parseTenantId } from '../tenants/tenant-id.js';
import type { Principal } from './principal.js';

export const localTenantDefault = 'local';
export const localSubject = 'local';

export function localPrincipal(tenant: string = localTenantDefault): Principal {
  return {
    caller: { tenant: parseTenantId(tenant), subject: localSubject, name: localSubject, roles: [] },
    capabilities: new Set(['read', 'write', 'admin', 'audit'] as const),
    via: 'local',
  };
}
