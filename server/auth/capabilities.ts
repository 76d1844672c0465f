/**
 * Roles to capabilities. A token's roles are its realm roles (`realm_access.roles`) plus its
 * client roles on this resource (`resource_access.<clientId>.roles`; other clients' roles are
 * ignored). Each role grants the capabilities the role map lists for it; unknown roles grant
 * nothing. IOBOXX_ROLE_MAP (JSON, same shape as `roleMapDefault`) replaces the defaults.
 */
import type { JWTPayload } from 'jose';
import { MemoryError } from '../../storage/errors.js';
import { isJsonObject } from '../../storage/json-object.js';
import type { Capability } from '../../tools/tool.js';
import type { Principal } from './principal.js';
import { AuthError } from './auth-error.js';

export const capabilityNames: readonly Capability[] = ['read', 'write', 'admin', 'audit'];

/** The defaults: Keycloak roles to create (realm or client roles) for the usual duties. */
export const roleMapDefault: Readonly<Record<string, readonly Capability[]>> = {
  'memory-reader': ['read'],
  'memory-writer': ['read', 'write'],
  'memory-admin': ['read', 'write', 'admin'],
  auditor: ['audit', 'read'],
};

export type RoleMap = ReadonlyMap<string, ReadonlySet<Capability>>;

/** Bounds on what a token or a configuration may carry. */
export const rolesMax = 512;
export const roleNameCharsMax = 255;
export const roleMapEntriesMax = 256;

export function roleMapFrom(record: Readonly<Record<string, readonly Capability[]>>): RoleMap {
  return new Map(Object.entries(record).map(([role, granted]) => [role, new Set(granted)]));
}

/** Parses IOBOXX_ROLE_MAP; throws `invalid_argument` naming what is wrong. */
export function parseRoleMap(json: string): RoleMap {
  const invalid = (why: string) =>
    new MemoryError('invalid_argument', `IOBOXX_ROLE_MAP ${why}`, 'example: {"memory-reader":["read"],"memory-writer":["read","write"]}');
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw invalid('is not JSON');
  }
  if (!isJsonObject(value)) {
    throw invalid('must be an object mapping role names to capability lists');
  }
  const entries = Object.entries(value);
  if (entries.length > roleMapEntriesMax) throw invalid(`has more than ${roleMapEntriesMax} roles`);
  const record: Record<string, Capability[]> = {};
  for (const [role, granted] of entries) {
    if (role.length === 0 || role.length > roleNameCharsMax) throw invalid(`has a role name of ${role.length} characters`);
    if (!Array.isArray(granted) || !granted.every((name) => (capabilityNames as readonly unknown[]).includes(name))) {
      throw invalid(`role ${role}: capabilities must be a list of ${capabilityNames.join(', ')}`);
    }
    record[role] = granted as Capability[];
  }
  return roleMapFrom(record);
}

/** Realm roles plus this client's roles, deduplicated and sorted. Throws on a malformed shape. */
export function rolesFromClaims(claims: JWTPayload, clientId: string): readonly string[] {
  const realmRoles = rolesOf(claims.realm_access, 'realm_access');
  const resourceAccess = claims.resource_access;
  if (resourceAccess !== undefined && !isJsonObject(resourceAccess)) {
    throw new AuthError('malformed_claims', 'resource_access must be an object');
  }
  const clientAccess =
    resourceAccess !== undefined && Object.hasOwn(resourceAccess, clientId)
      ? (resourceAccess as Record<string, unknown>)[clientId]
      : undefined;
  const clientRoles = rolesOf(clientAccess, `resource_access.${clientId}`);
  const roles = [...new Set([...realmRoles, ...clientRoles])].sort();
  if (roles.length > rolesMax) {
    throw new AuthError('malformed_claims', `token carries more than ${rolesMax} roles`);
  }
  return roles;
}

function rolesOf(access: unknown, where: string): readonly string[] {
  if (access === undefined || access === null) return [];
  if (!isJsonObject(access)) {
    throw new AuthError('malformed_claims', `${where} must be an object`);
  }
  const roles = (access as { roles?: unknown }).roles;
  if (roles === undefined) return [];
  if (!Array.isArray(roles) || !roles.every((role) => typeof role === 'string' && role.length <= roleNameCharsMax)) {
    throw new AuthError('malformed_claims', `${where}.roles must be a list of role names`);
  }
  return roles as string[];
}

export function capabilitiesForRoles(roles: readonly string[], roleMap: RoleMap): ReadonlySet<Capability> {
  const granted = new Set<Capability>();
  for (const role of roles) {
    for (const capability of roleMap.get(role) ?? []) granted.add(capability);
  }
  return granted;
}

/** Throws AuthError `insufficient_capability` (a `forbidden` MemoryError, HTTP 403) when missing. */
export function requireCapability(principal: Principal, capability: Capability): void {
  if (!principal.capabilities.has(capability)) {
    throw new AuthError('insufficient_capability', `this call needs the ${capability} capability`);
  }
}
