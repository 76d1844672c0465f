/**
 * CORS for the browser origins the Origin guard lets in (loopback ones and IOBOXX_ALLOWED_ORIGINS):
 * a browser MCP client sends headers a browser must preflight (Authorization, Mcp-Session-Id),
 * and must be allowed to read the answer's session id and auth challenge. Mounted after the
 * Origin guard, so an Origin reaching it is an allowed one, and it is echoed back. Requests
 * without Origin (every non-browser client) get no CORS headers. A preflight names the methods
 * of the endpoint it asks about (the legacy SSE pair serves GET on /sse and POST on /messages;
 * the rest, Streamable HTTP's mcpMethods), as that endpoint's 405 `Allow` does.
 */
import cors from 'cors';
import type { RequestHandler } from 'express';
import { mcpMethods } from './allowed-methods.js';

/** Request headers a browser client may send. */
export const corsAllowedHeaders = ['Authorization', 'Content-Type', 'Accept', 'Mcp-Session-Id', 'Mcp-Protocol-Version', 'Last-Event-ID', 'X-Ioboxx-Tenant'];
/** Response headers a browser client may read. */
export const corsExposedHeaders = ['Mcp-Session-Id', 'Mcp-Protocol-Version', 'WWW-Authenticate', 'Retry-After'];
/** How long a browser may reuse a preflight's answer. */
export const corsPreflightMaxAgeS = 600;

export function corsForAllowedOrigins(methods: readonly string[] = mcpMethods): RequestHandler {
  const handler = cors({
    origin: true,
    methods: [...methods],
    allowedHeaders: corsAllowedHeaders,
    exposedHeaders: corsExposedHeaders,
    maxAge: corsPreflightMaxAgeS,
  });
  return (req, res, next) => (req.headers.origin === undefined ? next() : handler(req, res, next));
}
