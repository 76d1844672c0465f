/**
 * A method an MCP endpoint does not serve is answered 405 with an `Allow` header naming the ones
 * it does (RFC 9110 §15.5.6), as the SDK's session transport answers one on a session. Before,
 * a PUT on /mcp without a session got 400 (a 2025-era request needs a session), which told its
 * client to fix the request rather than the method.
 *
 * HEAD is not served on an MCP endpoint (it is not in any `Allow`): an MCP answer is a stream or
 * a call's result, neither of which a HEAD can read. Express hands a HEAD to a GET route, so a
 * GET route of an MCP endpoint must refuse it too (`/sse` does with allowOnly(sseMethods)).
 */
import type { NextFunction, Request, Response } from 'express';
import { sendJsonRpcError } from './json-rpc-error.js';

/** Streamable HTTP: POST a message, GET a session's event stream, DELETE a session. */
export const mcpMethods: readonly string[] = ['GET', 'POST', 'DELETE'];

export function allowOnly(methods: readonly string[]): (req: Request, res: Response, next: NextFunction) => void {
  const allow = methods.join(', ');
  return (req, res, next) => {
    if (methods.includes(req.method)) return next();
    res.setHeader('Allow', allow);
    sendJsonRpcError(res, 405, -32000, `Method Not Allowed: ${req.path} serves ${allow}`);
  };
}
