/**
 * OpenID Provider discovery: `${issuer}/.well-known/openid-configuration` names the JWKS URL.
 * The document must name exactly the configured issuer (OpenID Connect Discovery §4.3), or a
 * proxy or a typo could make us trust another issuer's keys.
 */
import { AuthError } from './auth-error.js';

/** A discovery document is a few kilobytes; anything much larger is not one. */
export const discoveryBytesMax = 256 * 1024;

export interface DiscoveredIssuer {
  readonly issuer: string;
  readonly jwksUri: URL;
}

export function discoveryUrl(issuer: string): URL {
  return new URL(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`);
}

export async function discoverIssuer(
  issuer: string,
  options: { readonly timeoutMs: number; readonly allowHttp: boolean },
): Promise<DiscoveredIssuer> {
  const url = discoveryUrl(issuer);
  let text: string;
  try {
    // No redirects: the configured issuer URL is the one we trust, not wherever it points.
    const response = await fetch(url, {
      redirect: 'error',
      signal: AbortSignal.timeout(options.timeoutMs),
      headers: { accept: 'application/json' },
    });
    if (response.status !== 200) {
      throw new Error(`HTTP ${response.status}`);
    }
    const declaredBytes = Number(response.headers.get('content-length') ?? '0');
    if (declaredBytes > discoveryBytesMax) {
      throw new Error(`document of ${declaredBytes} bytes > ${discoveryBytesMax}`);
    }
    text = await response.text();
  } catch (error) {
    throw new AuthError('issuer_unavailable', `OpenID discovery at ${url.href} failed: ${(error as Error).message}`);
  }
  if (text.length > discoveryBytesMax) {
    throw new AuthError('issuer_unavailable', `OpenID discovery document at ${url.href} is larger than ${discoveryBytesMax} bytes`);
  }
  return parseDiscoveryDocument(text, issuer, options.allowHttp, url.href);
}

function parseDiscoveryDocument(text: string, issuer: string, allowHttp: boolean, source: string): DiscoveredIssuer {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new AuthError('issuer_unavailable', `OpenID discovery document at ${source} is not JSON`);
  }
  if (typeof document !== 'object' || document === null) {
    throw new AuthError('issuer_unavailable', `OpenID discovery document at ${source} is not an object`);
  }
  const { issuer: named, jwks_uri: jwksUri } = document as Record<string, unknown>;
  if (named !== issuer) {
    throw new AuthError('issuer_unavailable', `OpenID discovery at ${source} names issuer ${String(named)}, expected ${issuer}`);
  }
  if (typeof jwksUri !== 'string') {
    throw new AuthError('issuer_unavailable', `OpenID discovery document at ${source} has no jwks_uri`);
  }
  let url: URL;
  try {
    url = new URL(jwksUri);
  } catch {
    throw new AuthError('issuer_unavailable', `OpenID discovery document at ${source} has an invalid jwks_uri`);
  }
  assertFetchableUrl(url, allowHttp, 'jwks_uri');
  return { issuer, jwksUri: url };
}

/** https, or http on loopback (tests, sidecars), or http anywhere when explicitly allowed. */
export function assertFetchableUrl(url: URL, allowHttp: boolean, what: string): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && (allowHttp || isLoopbackHost(url.hostname))) return;
  throw new AuthError(
    'issuer_unavailable',
    `${what} ${url.href} must use https (http is accepted only on loopback or with IOBOXX_OIDC_ALLOW_HTTP=true)`,
  );
}

function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}
