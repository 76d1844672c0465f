/**
 * From an access token (and the tenant the request names) to a Principal: verify the token,
 * take the tenant from its organization claim, map its roles to capabilities. One path for
 * HTTP and stdio, so both are verified the same way.
 */
import type { Principal } from './principal.js';
import type { AuthConfig } from './auth-config.js';
import { capabilitiesForRoles, rolesFromClaims } from './capabilities.js';
import { organizationAliases, resolveTenant } from './tenant-claims.js';
import type { TokenConnection } from './connection-token-memo.js';
import { createTokenVerifier, type TokenVerifier, type VerifiedAccessToken } from './token-verifier.js';

export const displayNameCharsMax = 255;

/** A Principal from a verified token, with the moment the token stops being valid. */
export interface TokenPrincipal extends Principal {
  readonly via: 'token';
  readonly tokenExpiresAtMs: number;
}

export interface Authenticator {
  readonly config: AuthConfig;
  readonly verifier: TokenVerifier;
  /**
   * Throws AuthError. `tenantSelection` is the raw tenant the request names (path, header or
   * IOBOXX_TENANT), undefined when it names none. `connection`: the connection the token came on
   * (see TokenVerifier.verify).
   */
  authenticate(token: string, tenantSelection: string | undefined, connection?: TokenConnection): Promise<TokenPrincipal>;
}

export function createAuthenticator(config: AuthConfig): Authenticator {
  const verifier = createTokenVerifier(config.oidc);
  // The principal depends only on the verified claims, the selection and the configuration, so
  // it is built once per remembered verification (the verifier hands back the same frozen object
  // while the verification holds) and per selection; it goes when the verification does.
  const principals = new WeakMap<VerifiedAccessToken, Map<string | undefined, TokenPrincipal>>();
  return {
    config,
    verifier,
    async authenticate(token, tenantSelection, connection) {
      const verified = await verifier.verify(token, connection);
      // Keyed by the selection as sent, `undefined` for none: a selection is a pattern-checked member
      // alias by the time a principal exists for it. (Keyed by `selection ?? ''`, an empty selection
      // found the principal of no selection and skipped its check once the token had been served.)
      const known = principals.get(verified)?.get(tenantSelection);
      if (known !== undefined) return known;
      const principal = principalOf(verified, tenantSelection, config);
      let bySelection = principals.get(verified);
      if (bySelection === undefined) principals.set(verified, (bySelection = new Map()));
      // At most one entry per organization the token names (organizationsMax), plus "none".
      bySelection.set(tenantSelection, principal);
      return principal;
    },
  };
}

function principalOf(verified: VerifiedAccessToken, tenantSelection: string | undefined, config: AuthConfig): TokenPrincipal {
  const tenant = resolveTenant(organizationAliases(verified.claims, config.tenantClaim), tenantSelection);
  const roles = Object.freeze(rolesFromClaims(verified.claims, config.clientId));
  const username = verified.claims.preferred_username;
  const name = typeof username === 'string' && username.length <= displayNameCharsMax ? username : undefined;
  // Frozen: one principal serves every request that carries the same token.
  return Object.freeze({
    caller: Object.freeze(name === undefined ? { tenant, subject: verified.subject, roles } : { tenant, subject: verified.subject, name, roles }),
    capabilities: capabilitiesForRoles(roles, config.roleMap),
    via: 'token',
    tokenExpiresAtMs: verified.expiresAtMs,
  });
}
