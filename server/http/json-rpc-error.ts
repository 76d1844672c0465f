/** HTTP-level refusals in JSON-RPC shape, so MCP clients surface them as errors with text. */
import type { Response } from 'express';
import { noteRefusalReason } from './refusal-audit.js';

/** `id` is the refused request's when it could be read, else null (JSON-RPC 2.0). */
export function sendJsonRpcError(res: Response, status: number, code: number, message: string, data?: unknown, id: string | number | null = null): void {
  if (res.headersSent) return;
  noteRefusalReason(res, message);
  res.status(status).json({ jsonrpc: '2.0', error: { code, message, ...(data !== undefined && { data }) }, id });
}

/**
 * A body that did not parse to an object or an array (JSON-RPC's only shapes): -32700 (Parse
 * error) when it is not JSON at all, -32600 (Invalid Request) when it is JSON such as `42` or
 * `"x"`: JSON-RPC 2.0 keeps the parse error for text that is not JSON.
 */
export function sendBodyNotMessage(res: Response, text: string | undefined): void {
  let isJson = false;
  try {
    if (text !== undefined) isJson = (JSON.parse(text), true);
  } catch {
    // not JSON: a parse error
  }
  if (isJson) sendJsonRpcError(res, 400, -32600, 'Invalid Request: the body is JSON but not a JSON-RPC message (an object, or an array of them)');
  else sendJsonRpcError(res, 400, -32700, 'Parse error: the request body is not valid JSON');
}
