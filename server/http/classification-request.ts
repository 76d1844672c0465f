/**
 * The web Request `isLegacyRequest` classifies, without the body. Given the already-parsed
 * body, the SDK reads only the method and the MCP headers of the request (it neither reads
 * nor clones the body); converting the whole Node request (`toWebRequest`: headers, a body
 * stream) cost one full web Request per call on top of the one the modern handler builds.
 * A POST whose body express did not parse (undefined) keeps the full conversion: there the
 * SDK must read the bytes itself.
 */
import type { Request } from 'express';
import { toWebRequest } from '@modelcontextprotocol/node';

/** The request headers the SDK's classification step reads (standardHeadersOf). */
const classifiedHeaders = ['mcp-protocol-version', 'mcp-method', 'mcp-name'] as const;

export async function classificationRequest(req: Request, bodyBytesMax: number): Promise<globalThis.Request> {
  if (req.method === 'POST' && req.body === undefined) return toWebRequest(req, undefined, { maxRequestBodySize: bodyBytesMax });
  const headers = new Headers();
  for (const name of classifiedHeaders) {
    const value = req.headers[name];
    if (typeof value === 'string') headers.set(name, value);
    else if (Array.isArray(value)) for (const v of value) headers.append(name, v);
  }
  // The URL only has to be valid: classification never reads it.
  return new globalThis.Request('http://mcp.invalid/mcp', { method: req.method, headers });
}
