/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728), so MCP clients find the authorization
 * server from a 401 alone. Served at the root well-known URL and at the path-specific one
 * (RFC 9728 §3.1: the well-known segment goes between host and path):
 *   /.well-known/oauth-protected-resource                 resource = {base}/
 *   /.well-known/oauth-protected-resource/mcp             resource = {base}/mcp
 *   /.well-known/oauth-protected-resource/t/{tenant}/mcp  resource = {base}/t/{tenant}/mcp
 * Each document's `resource` is exactly the URL its well-known URL was derived from (§3.3).
 * Paths are matched on the raw request target: no decoding, no dot-segment folding.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTenantId } from '../tenants/tenant-id.js';

export const protectedResourceMetadataPrefix = '/.well-known/oauth-protected-resource';
export const endpointNamesDefault: readonly string[] = ['mcp'];
/** Keycloak adds the organization claim only when the `organization` scope is requested. */
export const scopesSupportedDefault: readonly string[] = ['openid', 'organization'];
export const metadataMaxAgeS = 3600;

export interface ProtectedResourceOptions {
  /** This server's public origin, e.g. https://memory.example.com (no path). */
  readonly publicBaseUrl: string;
  /**
   * No public origin configured (IOBOXX_PUBLIC_URL unset): each request is named the origin it was
   * sent to (its Host), the one its client checks the metadata's `resource` against (an MCP client
   * refuses a document naming another origin: 127.0.0.1 for localhost, 0.0.0.0 for a wildcard
   * bind); `publicBaseUrl` only for a request without a usable Host.
   */
  readonly publicBaseUrlFromRequest?: boolean;
  /** The issuers clients may get tokens from (the OIDC issuer). */
  readonly authorizationServers: readonly string[];
  /** Last path segment of each protected endpoint: `/NAME` and `/t/{tenant}/NAME`. Default ['mcp']. */
  readonly endpointNames?: readonly string[];
  readonly scopesSupported?: readonly string[];
  readonly resourceName?: string;
  readonly resourceDocumentation?: string;
}

export interface ProtectedResourceMetadata {
  readonly resource: string;
  readonly authorization_servers: readonly string[];
  readonly bearer_methods_supported: readonly ['header'];
  readonly scopes_supported?: readonly string[];
  readonly resource_name?: string;
  readonly resource_documentation?: string;
}

/** The origin, checked: a base URL with a path, query or fragment would break §3.1's derivation. */
export function publicOrigin(publicBaseUrl: string): string {
  const url = new URL(publicBaseUrl);
  if (!(url.protocol === 'https:' || url.protocol === 'http:') || url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    throw new TypeError(`public base URL ${publicBaseUrl} must be an http(s) origin without path, query or fragment`);
  }
  return url.origin;
}

/**
 * The protected resource path a raw request path names (`/mcp`, `/t/acme/mcp`), or undefined
 * when the path is not a protected endpoint with a valid tenant segment.
 */
export function resourcePathOf(rawPath: string, endpointNames: readonly string[] = endpointNamesDefault): string | undefined {
  const segments = rawPath.split('/');
  if (segments.length === 2 && endpointNames.includes(segments[1] as string)) return rawPath;
  if (segments.length === 4 && segments[1] === 't' && isTenantId(segments[2]) && endpointNames.includes(segments[3] as string)) {
    return rawPath;
  }
  return undefined;
}

/** `resourcePath` undefined → the root document. */
export function protectedResourceMetadata(
  resourcePath: string | undefined,
  options: ProtectedResourceOptions,
): ProtectedResourceMetadata {
  const origin = publicOrigin(options.publicBaseUrl);
  const scopes = options.scopesSupported ?? scopesSupportedDefault;
  return {
    resource: `${origin}${resourcePath ?? '/'}`,
    authorization_servers: [...options.authorizationServers],
    bearer_methods_supported: ['header'],
    ...(scopes.length > 0 ? { scopes_supported: [...scopes] } : {}),
    resource_name: options.resourceName ?? 'ioboxx-memory',
    ...(options.resourceDocumentation !== undefined ? { resource_documentation: options.resourceDocumentation } : {}),
  };
}

/** The public origin to name to the client of `req` (see publicBaseUrlFromRequest). */
export function publicBaseUrlFor(req: IncomingMessage, options: ProtectedResourceOptions): string {
  const host = req.headers.host;
  if (options.publicBaseUrlFromRequest !== true || host === undefined || !URL.canParse(`http://${host}`)) return options.publicBaseUrl;
  const url = new URL(`http://${host}`);
  // A Host is a hostname and a port: one carrying more (user info, a path) names no origin.
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') return options.publicBaseUrl;
  return url.origin;
}

export function protectedResourceMetadataUrl(resourcePath: string | undefined, publicBaseUrl: string): string {
  return `${publicOrigin(publicBaseUrl)}${protectedResourceMetadataPrefix}${resourcePath ?? ''}`;
}

/**
 * Serves the metadata documents. Returns false when the request is not for one (call the next
 * handler), true when it answered. Works with node:http and express alike.
 */
export function serveProtectedResourceMetadata(
  req: IncomingMessage,
  res: ServerResponse,
  options: ProtectedResourceOptions,
): boolean {
  const rawPath = rawRequestPath(req);
  if (rawPath === undefined) return false;
  if (rawPath !== protectedResourceMetadataPrefix && !rawPath.startsWith(`${protectedResourceMetadataPrefix}/`)) return false;
  // Browser-based MCP clients fetch this cross-origin; it holds nothing secret.
  res.setHeader('Access-Control-Allow-Origin', '*');
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { 'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS', 'Access-Control-Max-Age': '86400' }).end();
    return true;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD, OPTIONS', 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'method_not_allowed' }));
    return true;
  }
  const subPath = rawPath.slice(protectedResourceMetadataPrefix.length);
  const resourcePath = subPath === '' ? undefined : resourcePathOf(subPath, options.endpointNames);
  if (subPath !== '' && resourcePath === undefined) {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error: 'not_found' }));
    return true;
  }
  const body = JSON.stringify(protectedResourceMetadata(resourcePath, { ...options, publicBaseUrl: publicBaseUrlFor(req, options) }));
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Cache-Control': `public, max-age=${metadataMaxAgeS}`,
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

/**
 * The path of the raw request target, undecoded and with dot segments kept (WHATWG URL parsing
 * would fold `/t/%2e%2e/mcp` into `/mcp`). Express's `originalUrl` when mounted, else `url`.
 * Undefined when the target is not origin-form.
 */
export function rawRequestPath(req: IncomingMessage): string | undefined {
  const target = rawRequestTarget(req);
  if (!target.startsWith('/')) return undefined;
  const end = target.search(/[?#]/);
  return end === -1 ? target : target.slice(0, end);
}

export function rawRequestTarget(req: IncomingMessage): string {
  return (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
}
