/**
 * Every MCP request gets an audit event (DESIGN invariant 7), including the ones refused before
 * any MCP server sees them: a browser Origin or Host the guards refuse (403), a session that is
 * gone (404), a wrong Accept (406) or protocol version (400), a body too large (413) or not JSON
 * (400), a tenant over its limits (429), a server shutting down (503). Those answers come from
 * the guards, express, the SDK's transports and our own routes; the one place they all pass is
 * the response itself, so the audit watches each MCP request's response.
 *
 * A GET or a DELETE carries no JSON-RPC message, so no server ever reports it: a session's event
 * stream (GET /mcp, GET /sse) and a session's end (DELETE /mcp) are reported here whatever their
 * answer, so an auditor sees who opened a stream or ended a session. A stream's response finishes
 * when the stream ends (hours later, or never if the process dies): they are reported as their
 * headers go out.
 *
 * Authentication's refusals (401, and the 400/403 of a tenant selection) are left out: authentication
 * records its own, with the reason (main-wiring.ts); recorded here too, each was in the server's
 * chain twice.
 * Requests whose JSON-RPC messages reached a server are audited there (server/mcp/request-audit.ts):
 * those answers are 2xx, JSON-RPC errors included.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Response } from 'express';
import type { Principal } from '../auth/principal.js';

/** An MCP request answered at the HTTP level: refused (4xx, 5xx), or a GET or DELETE (any status). */
export interface HttpRefusalEvent {
  /** Known when the request was authenticated before it was refused. */
  readonly principal: Principal | undefined;
  readonly method: string;
  /** The path without its query. */
  readonly path: string;
  readonly status: number;
  /** The refusal's message when our code wrote it (noteRefusalReason), else the status's name. */
  readonly reason: string;
}

/** The MCP endpoints (also under /t/{tenant}/): other paths (health, metrics, hooks) are not MCP requests. */
const mcpPathPattern = /^(?:\/t\/[^/]+)?\/(?:mcp|sse|messages)\/?$/i;
const reasonLocal = 'refusalReason';
const authenticationLocal = 'refusedByAuthentication';

/** Our code names its refusal's reason here (sendJsonRpcError does), for the audit. */
export function noteRefusalReason(res: Response, reason: string): void {
  (res.locals as Record<string, unknown>)[reasonLocal] = reason;
}

/** The response is authentication's refusal, which authentication records itself. */
export function noteAuthenticationRefusal(res: Response): void {
  (res.locals as Record<string, unknown>)[authenticationLocal] = true;
}

/** Methods that carry no JSON-RPC message: every answer to them is reported here, none by a server. */
const methodsWithoutMessage = new Set(['GET', 'DELETE']);

/**
 * Wraps the server's request handler: each MCP request answered 4xx or 5xx (but by authentication),
 * and each GET or DELETE of an MCP endpoint, is reported once.
 */
export function auditingRefusals(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  onRefusal: (event: HttpRefusalEvent) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    if (mcpPathPattern.test(path)) {
      const method = req.method ?? '-';
      const everyAnswer = methodsWithoutMessage.has(method);
      let reported = false;
      const report = () => {
        const status = res.statusCode;
        const locals = (res as Partial<Response>).locals as Record<string, unknown> | undefined;
        if (reported || (status < 400 && !everyAnswer) || locals?.[authenticationLocal] === true) return;
        reported = true;
        const principal = locals?.['principal'] as Principal | undefined;
        const noted = locals?.[reasonLocal];
        onRefusal({ principal, method, path, status, reason: typeof noted === 'string' ? noted : STATUS_CODES[status] ?? 'refused' });
      };
      if (everyAnswer) {
        // Node writes every response's headers through writeHead (res.end and flushHeaders too).
        const writeHead = res.writeHead;
        res.writeHead = function (this: ServerResponse, ...args: Parameters<ServerResponse['writeHead']>) {
          const written = writeHead.apply(this, args);
          report();
          return written;
        } as ServerResponse['writeHead'];
      }
      res.once('finish', report);
    }
    handler(req, res);
  };
}
