/**
 * A Streamable HTTP session driven by hand (fetch, no SDK client): for tests of what the wire
 * carries, bad input included. Each POST gives up after 20 s, so a request the server never
 * answers fails its test instead of hanging it.
 */
import { expect } from 'vitest';

export const olderRevision = '2025-11-25';
export const bothAccepted = 'application/json, text/event-stream';

/** POSTs `body` as JSON (a string is sent as it is). */
export function post(url: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: bothAccepted, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
}

export const newerRevision = '2026-07-28';

/** The per-request envelope a 2026-era request carries in `_meta`. */
export const newerEnvelope = {
  'io.modelcontextprotocol/protocolVersion': newerRevision,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

/**
 * POSTs one 2026-era request (no session) as that era's client sends it: the envelope and `meta`
 * in `_meta`, the Mcp-Method header and, for a named params (a tool call), Mcp-Name.
 */
export function post2026(url: string, id: number, method: string, params: Record<string, unknown>, options: { meta?: Record<string, unknown>; signal?: AbortSignal } = {}): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: bothAccepted, 'mcp-protocol-version': newerRevision, 'mcp-method': method };
  if (typeof params['name'] === 'string') headers['mcp-name'] = params['name'];
  return fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: { ...newerEnvelope, ...options.meta } } }),
    signal: options.signal ?? AbortSignal.timeout(20_000),
  });
}

/**
 * Opens a session of `revision` (default olderRevision) by hand (`headers` on every request, e.g.
 * who is calling); returns the headers every later POST carries.
 */
export async function openSession(url: string, headers: Record<string, string> = {}, revision = olderRevision): Promise<Record<string, string>> {
  const opened = await post(url, {
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: revision, capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
  }, headers);
  expect(opened.status).toBe(200);
  expect(((await opened.json()) as { result: { protocolVersion: string } }).result.protocolVersion).toBe(revision);
  const session = { ...headers, 'mcp-session-id': opened.headers.get('mcp-session-id')!, 'mcp-protocol-version': revision };
  expect((await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, session)).status).toBe(202);
  return session;
}
