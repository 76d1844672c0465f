/**
 * stdio with identity: the access token comes from the environment (IOBOXX_TOKEN) and is
 * verified exactly as an HTTP bearer token is; IOBOXX_TENANT selects the tenant when the token
 * names several organizations. Verify again per request (a cached JWKS makes it cheap): an
 * access token expires, and a session must not outlive it.
 */
import { AuthError } from './auth-error.js';
import type { Authenticator, TokenPrincipal } from './authenticator.js';

export async function authenticateEnvToken(
  token: string | undefined,
  authenticator: Authenticator,
  tenantSelection?: string,
): Promise<TokenPrincipal> {
  if (token === undefined || token.trim() === '') {
    throw new AuthError('missing_token', 'IOBOXX_TOKEN is required when IOBOXX_OIDC_ISSUER is set', 'set IOBOXX_TOKEN to a Keycloak access token');
  }
  const selection = tenantSelection === undefined || tenantSelection === '' ? undefined : tenantSelection;
  return authenticator.authenticate(token.trim(), selection);
}
