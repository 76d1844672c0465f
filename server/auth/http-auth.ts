/**
 * Bearer authentication of one HTTP request (node:http or express): a Principal, or the exact
 * answer to send (status, headers, JSON body) following RFC 6750 and the MCP authorization spec:
 *   400 invalid_request     two Authorization headers, a token in the query string (refused and
 *                           never used), a malformed header, a malformed or ambiguous tenant
 *   401 (no error code)     no credentials; 401 invalid_token for a token that does not verify
 *   403 insufficient_scope  a valid token for a tenant it is not a member of, or with no capability
 *   503                     the issuer's keys cannot be fetched
 * Every 4xx carries `WWW-Authenticate: Bearer resource_metadata="…"` so clients can discover the
 * authorization server (RFC 9728). Tokens are never logged, echoed, or put in a URL.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthError, type AuthFailureReason } from './auth-error.js';
import type { Authenticator, TokenPrincipal } from './authenticator.js';
import {
  protectedResourceMetadataUrl,
  publicBaseUrlFor,
  rawRequestPath,
  rawRequestTarget,
  resourcePathOf,
  scopesSupportedDefault,
  type ProtectedResourceOptions,
} from './protected-resource-metadata.js';

/** For clients that cannot put the tenant in the path. */
export const tenantHeaderName = 'x-ioboxx-tenant';
export const tenantPathPrefix = '/t/';
export const errorDescriptionCharsMax = 200;
export const issuerRetryAfterS = 5;

export interface HttpAuthOptions {
  readonly authenticator: Authenticator;
  readonly resource: ProtectedResourceOptions;
  /** Refuse (403) a valid token that grants no capability at all. Default true. */
  readonly requireAnyCapability?: boolean;
}

export interface HttpAuthFailure {
  readonly status: 400 | 401 | 403 | 503;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly error: string; readonly error_description: string };
  /** For metrics and audit. */
  readonly reason: AuthFailureReason;
}

export type HttpAuthResult =
  | { readonly ok: true; readonly principal: TokenPrincipal }
  | { readonly ok: false; readonly failure: HttpAuthFailure };

/** RFC 6750 b64token. */
const b64tokenPattern = /^[A-Za-z0-9\-._~+/]+=*$/;

/** Never throws AuthError: it becomes the failure. Other errors (bugs) propagate. */
export async function authenticateRequest(req: IncomingMessage, options: HttpAuthOptions): Promise<HttpAuthResult> {
  const rawPath = rawRequestPath(req);
  try {
    if (rawPath === undefined) throw new AuthError('invalid_request', 'request target must be a path');
    refuseTokenInQuery(rawRequestTarget(req));
    const headers = credentialHeadersOf(req);
    const tenantSelection = tenantSelectionIn(headers, rawPath);
    const token = bearerTokenIn(headers);
    let principal: TokenPrincipal;
    try {
      // The socket: a keep-alive client's identical token is not hashed again (connection-token-memo.ts).
      principal = await options.authenticator.authenticate(token, tenantSelection, req.socket ?? undefined);
    } catch (error) {
      // The b64token check of RFC 6750 runs only on a refused token: a token that verifies passed the
      // verifier's compact-JWS check, whose characters are a subset of b64token's. Checked first, it
      // cost a scan of every request's token; checked here, a malformed token is still a 400.
      if (error instanceof AuthError && !b64tokenPattern.test(token)) throw new AuthError('invalid_request', 'malformed Bearer credentials');
      throw error;
    }
    if ((options.requireAnyCapability ?? true) && principal.capabilities.size === 0) {
      throw new AuthError('insufficient_capability', 'the token grants no capability on this resource');
    }
    return { ok: true, principal };
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    // Only a refusal needs the resource path (for its metadata URL).
    const resourcePath = rawPath === undefined ? undefined : resourcePathOf(rawPath, options.resource.endpointNames);
    return { ok: false, failure: httpAuthFailure(error, { ...options.resource, publicBaseUrl: publicBaseUrlFor(req, options.resource) }, resourcePath) };
  }
}

/** The answer for an AuthError (also for denials decided later, e.g. a missing capability). */
export function httpAuthFailure(
  error: AuthError,
  resource: ProtectedResourceOptions,
  resourcePath: string | undefined,
): HttpAuthFailure {
  const metadataUrl = protectedResourceMetadataUrl(resourcePath, resource.publicBaseUrl);
  const description = challengeText(error.message);
  const challenge = [`resource_metadata="${metadataUrl}"`];
  if (error.oauthError !== undefined) {
    challenge.push(`error="${error.oauthError}"`, `error_description="${description}"`);
  }
  const scopes = resource.scopesSupported ?? scopesSupportedDefault;
  if (error.status === 401 && scopes.length > 0) challenge.push(`scope="${scopes.join(' ')}"`);
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
  };
  if (error.status === 503) {
    headers['Retry-After'] = String(issuerRetryAfterS);
  } else {
    headers['WWW-Authenticate'] = `Bearer ${challenge.join(', ')}`;
  }
  return {
    status: error.status,
    headers,
    // The body is JSON: it keeps the message as written (the header's quoted-string form drops quotes).
    body: { error: error.oauthError ?? (error.status === 503 ? 'temporarily_unavailable' : 'unauthorized'), error_description: error.message },
    reason: error.reason,
  };
}

export function sendAuthFailure(res: ServerResponse, failure: HttpAuthFailure): void {
  const body = JSON.stringify(failure.body);
  res.writeHead(failure.status, { ...failure.headers, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

/** RFC 6750 §2.3 allows `access_token` in the query; we refuse it, since URLs end up in logs. */
function refuseTokenInQuery(target: string): void {
  const queryStart = target.indexOf('?');
  if (queryStart === -1) return;
  const query = new URLSearchParams(target.slice(queryStart + 1).split('#')[0]);
  for (const name of query.keys()) {
    if (name.toLowerCase() === 'access_token') {
      throw new AuthError('invalid_request', 'access tokens in the URL are refused; send an Authorization: Bearer header');
    }
  }
}

/**
 * The request's Authorization and tenant headers, every value as sent, in one pass over the raw
 * headers. Node keeps only the first Authorization header in `req.headers` and silently drops the
 * rest, so duplicates are counted on `rawHeaders`.
 */
export interface CredentialHeaders {
  readonly authorization: readonly string[];
  readonly tenant: readonly string[];
}

const authorizationHeaderName = 'authorization';

export function credentialHeadersOf(req: IncomingMessage): CredentialHeaders {
  const authorization: string[] = [];
  const tenant: string[] = [];
  const raw = req.rawHeaders;
  for (let index = 0; index + 1 < raw.length; index += 2) {
    const name = raw[index] as string;
    // The length first: a lower-cased copy of every header name on every request is garbage.
    if (name.length === authorizationHeaderName.length && name.toLowerCase() === authorizationHeaderName) {
      authorization.push(raw[index + 1] as string);
    } else if (name.length === tenantHeaderName.length && name.toLowerCase() === tenantHeaderName) {
      tenant.push(raw[index + 1] as string);
    }
  }
  return { authorization, tenant };
}

/**
 * The raw tenant this request names: the segment after `/t/` in the path, and/or the tenant
 * header. Both may be given only if they agree. Any path under `/t/` names one.
 */
export function tenantSelectionIn(headers: CredentialHeaders, rawPath: string): string | undefined {
  const fromPath = rawPath.startsWith(tenantPathPrefix) ? (rawPath.slice(tenantPathPrefix.length).split('/')[0] as string) : undefined;
  if (headers.tenant.length > 1) throw new AuthError('invalid_request', `more than one ${tenantHeaderName} header`);
  const fromHeader = headers.tenant[0];
  if (fromPath !== undefined && fromHeader !== undefined && fromPath !== fromHeader) {
    throw new AuthError('invalid_request', `the path and the ${tenantHeaderName} header name different tenants`);
  }
  return fromPath ?? fromHeader;
}

const bearerScheme = 'bearer';

/**
 * The token of `Authorization: Bearer <token>` (scheme case-insensitive, one or more spaces),
 * found with plain string steps: a regular expression over a ~1.5 KB header was a measurable part
 * of each request. The token's b64token syntax is checked only if it is refused (see
 * authenticateRequest).
 */
export function bearerTokenIn(headers: CredentialHeaders): string {
  if (headers.authorization.length > 1) throw new AuthError('invalid_request', 'more than one Authorization header');
  const credentials = headers.authorization[0]?.trim() ?? '';
  if (credentials === '') throw new AuthError('missing_token', 'an access token is required');
  const schemeEnd = credentials.indexOf(' ');
  if (schemeEnd !== bearerScheme.length || credentials.slice(0, schemeEnd).toLowerCase() !== bearerScheme) {
    throw new AuthError('missing_token', 'an Authorization: Bearer access token is required');
  }
  let tokenStart = schemeEnd + 1;
  while (credentials.charCodeAt(tokenStart) === 0x20) tokenStart += 1;
  // Not empty: the credentials are trimmed, so something other than a space follows the spaces.
  return credentials.slice(tokenStart);
}

/** RFC 6750 error_description: printable ASCII without `"` and `\`. */
function challengeText(message: string): string {
  return message.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, ' ').slice(0, errorDescriptionCharsMax);
}
