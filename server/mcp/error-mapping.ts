/**
 * The one place where errors become MCP (and WebSocket) answers. A MemoryError keeps its stable
 * code; a failed store is unavailable; a zod failure is invalid_argument; anything else is `internal` with a generic message (the
 * stack goes to the log, never to the client).
 */
import { ProtocolError, ProtocolErrorCode, type CallToolResult } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { MemoryError, StoreFailed, type MemoryErrorCode } from '../../storage/errors.js';

export interface ErrorBody {
  readonly code: MemoryErrorCode;
  readonly message: string;
  readonly hint?: string;
}

/** Issues listed in one invalid_argument message; the rest are counted. */
const zodIssuesShownMax = 8;

/** Schema issues as one line: `where: what` for the first few, then how many more. `whole` names the path []. */
export function issuesMessage(issues: ReadonlyArray<{ readonly path: readonly PropertyKey[]; readonly message: string }>, whole: string): string {
  const shown = issues.slice(0, zodIssuesShownMax).map((issue) => {
    const where = issue.path.length === 0 ? whole : issue.path.map(String).join('.');
    return `${where}: ${issue.message}`;
  });
  const more = issues.length - shown.length;
  return shown.join('; ') + (more > 0 ? `; and ${more} more` : '');
}

function zodMessage(error: z.ZodError): string {
  return issuesMessage(error.issues, 'arguments');
}

/** Classify any thrown value. `isInternal` tells the caller to log the original. */
export function errorBodyOf(error: unknown): { body: ErrorBody; isInternal: boolean } {
  if (error instanceof MemoryError) {
    return { body: { code: error.code, message: error.message, ...(error.hint !== undefined && { hint: error.hint }) }, isInternal: false };
  }
  if (error instanceof StoreFailed) {
    // The store refuses every call until reopened (the HTTP server does so once it is idle, after a backoff).
    // Its files deleted, a reopen finds nothing to replay: what it acknowledged is gone, not reopened.
    const hint = error.kind === 'files_deleted'
      ? 'what it held is gone unless an operator restores it from a backup; retry in a few seconds to learn what the reopen finds'
      : 'retry in a few seconds: the store reopens with exactly what was acknowledged';
    return { body: { code: 'unavailable', message: error.message, hint }, isInternal: false };
  }
  if (error instanceof z.ZodError) {
    return { body: { code: 'invalid_argument', message: zodMessage(error), hint: 'fix the named fields and call again' }, isInternal: false };
  }
  return { body: { code: 'internal', message: 'internal error; nothing was acknowledged by this call', hint: 'retry later; if it persists, report it with the time of the call' }, isInternal: true };
}

/**
 * A tool error: `isError` with the {error} JSON as text. Not as structuredContent: the 1.x
 * SDK client validates structuredContent against the tool's outputSchema even on isError
 * results and would turn our error into a client-side schema failure.
 */
export function toolErrorResult(body: ErrorBody): CallToolResult {
  // Keys in the SDK result schema's order (see toolSuccessResult).
  return { content: [{ type: 'text', text: JSON.stringify({ error: body }) }], isError: true };
}

/**
 * The JSON-RPC code of a request the server could not serve now but may serve on a retry (its
 * tenant's store unavailable, a bound reached): JSON-RPC 2.0 leaves -32000 to -32099 to the
 * implementation's server errors, and -32603 (Internal error) told clients the server was broken.
 * The HTTP level's own retry-later refusals (503, 429) carry it too.
 */
export const retryLaterCode = -32000;

/** The codes a client should retry later, the message saying so first (a client shows the message, not the data). */
const retryLaterCodes: ReadonlySet<MemoryErrorCode> = new Set(['unavailable', 'busy']);

/** `body`'s message for a JSON-RPC error: a retry-later one says so, with its hint. */
export function protocolMessageOf(body: ErrorBody): string {
  if (!retryLaterCodes.has(body.code)) return body.message;
  return `${body.code}, retry later: ${body.message}${body.hint === undefined ? '' : ` (${body.hint})`}`;
}

const protocolCodeOf: Record<MemoryErrorCode, number> = {
  invalid_argument: ProtocolErrorCode.InvalidParams,
  // The 2026-07-28 spec answers a resources/read miss with -32602 (data.uri); the SDK maps -32002 to it anyway.
  not_found: ProtocolErrorCode.InvalidParams,
  version_conflict: ProtocolErrorCode.InvalidParams,
  limit_exceeded: ProtocolErrorCode.InvalidParams,
  forbidden: ProtocolErrorCode.InvalidRequest,
  unauthenticated: ProtocolErrorCode.InvalidRequest,
  busy: retryLaterCode,
  conflict: ProtocolErrorCode.InvalidParams,
  unavailable: retryLaterCode,
  outcome_unknown: ProtocolErrorCode.InternalError,
  internal: ProtocolErrorCode.InternalError,
};

/**
 * For non-tool requests (resources/*): a JSON-RPC error whose data carries the same {error}
 * body, plus `uri` when the request named one (what SDK clients key ResourceNotFoundError on).
 */
export function protocolErrorOf(body: ErrorBody, uri?: string): ProtocolError {
  return new ProtocolError(protocolCodeOf[body.code], protocolMessageOf(body), { ...(uri !== undefined && { uri }), error: body });
}
