/**
 * The tenant comes from the verified token only: Keycloak's organization claim, in either of
 * its shapes,
 *   a list of aliases                 "organization": ["acme", "globex"]
 *   an object keyed by alias          "organization": {"acme": {"id": "5f0c…"}}
 * A token naming one organization needs no selection. A token naming several must select one
 * per request (path `/t/{tenant}/…`, header `X-Ioboxx-Tenant`, or IOBOXX_TENANT for stdio), and
 * the selection must be one of its organizations. A selection is pattern-checked before it is
 * compared with anything, so a malformed id is a 400 and never reaches a path or a key.
 */
import type { JWTPayload } from 'jose';
import { isJsonObject } from '../../storage/json-object.js';
import { isTenantId } from '../tenants/tenant-id.js';
import { AuthError } from './auth-error.js';

export const tenantClaimDefault = 'organization';
/** Far more organizations than one person belongs to; past it the claim is damage. */
export const organizationsMax = 256;

/** The organization aliases the token names, as written (not yet pattern-checked), deduplicated. */
export function organizationAliases(claims: JWTPayload, claimName: string = tenantClaimDefault): readonly string[] {
  const claim = Object.hasOwn(claims, claimName) ? claims[claimName] : undefined;
  if (claim === undefined || claim === null) return [];
  let aliases: string[];
  if (Array.isArray(claim)) {
    if (!claim.every((alias): alias is string => typeof alias === 'string')) {
      throw new AuthError('malformed_claims', `claim ${claimName} must list organization aliases as strings`);
    }
    aliases = claim;
  } else if (typeof claim === 'object') {
    const entries = Object.entries(claim as Record<string, unknown>);
    if (!entries.every(([, value]) => isJsonObject(value))) {
      throw new AuthError('malformed_claims', `claim ${claimName} must map each organization alias to an object`);
    }
    aliases = entries.map(([alias]) => alias);
  } else {
    throw new AuthError('malformed_claims', `claim ${claimName} must be a list of aliases or an object keyed by alias`);
  }
  if (aliases.length > organizationsMax) {
    throw new AuthError('malformed_claims', `claim ${claimName} names more than ${organizationsMax} organizations`);
  }
  return [...new Set(aliases)];
}

/**
 * The tenant this request acts for. `selection` is the raw, untrusted tenant the request names
 * (undefined when it names none).
 */
export function resolveTenant(aliases: readonly string[], selection: string | undefined): string {
  if (selection !== undefined) {
    if (!isTenantId(selection)) {
      throw new AuthError(
        'invalid_tenant',
        'invalid tenant id',
        "a tenant id is 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
      );
    }
    if (!aliases.includes(selection)) {
      throw new AuthError('not_a_member', `the token is not a member of tenant ${selection}`);
    }
    return selection;
  }
  if (aliases.length === 0) {
    throw new AuthError('no_tenant', 'the token names no organization');
  }
  if (aliases.length > 1) {
    throw new AuthError(
      'tenant_selection_required',
      `the token names ${aliases.length} organizations; select one with the path /t/{tenant}/mcp or the X-Ioboxx-Tenant header`,
    );
  }
  const only = aliases[0] as string;
  if (!isTenantId(only)) {
    throw new AuthError('no_tenant', "the token's organization alias is not a valid tenant id");
  }
  return only;
}
