/**
 * Every MCP request gets an audit event (DESIGN invariant 7), including the ones refused before
 * any MCP server sees them: a browser Origin or Host the guards refuse (403), a session that is
 * gone (404), a wrong Accept (406) or protocol version (400), a body too large (413) or not JSON
 * (400), a tenant over its limits (429), a server shutting down (503). Those answers come from
 * the guards, express, the SDK's transports and our own routes; the one place they all pass is
 * the response itself, so the audit watches each MCP request's response finish.
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

export interface HttpRefusalEvent {
  /** Known when the request was authenticated before it was refused. */
  readonly principal: Principal | undefined;
  readonly method: string;
  /** The path without its query. */
  readonly path: string;
  readonly status: number;
  /** The refusal's message when our code wrote it (refusalReasonOf), else the status's name. */
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

/** Wraps the server's request handler: each MCP request answered 4xx or 5xx (but by authentication) is reported once it is sent. */
export function auditingRefusals(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  onRefusal: (event: HttpRefusalEvent) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    if (mcpPathPattern.test(path)) {
      res.once('finish', () => {
        const status = res.statusCode;
        const locals = (res as Partial<Response>).locals as Record<string, unknown> | undefined;
        if (status < 400 || locals?.[authenticationLocal] === true) return;
        const principal = locals?.['principal'] as Principal | undefined;
        const noted = locals?.[reasonLocal];
        onRefusal({ principal, method: req.method ?? '-', path, status, reason: typeof noted === 'string' ? noted : STATUS_CODES[status] ?? 'refused' });
      });
    }
    handler(req, res);
  };
}
