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
  try {
    return await authenticator.authenticate(token.trim(), selection);
  } catch (error) {
    // The refusal names HTTP's ways to select (a path, a header); a stdio server has only IOBOXX_TENANT.
    if (error instanceof AuthError && error.reason === 'tenant_selection_required') {
      throw new AuthError(
        'tenant_selection_required',
        'IOBOXX_TOKEN names several organizations; IOBOXX_TENANT must name the one this server serves',
        'set IOBOXX_TENANT to one of the organizations (aliases) of the token',
      );
    }
    throw error;
  }
}
