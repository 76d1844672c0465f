/** HTTP-level refusals in JSON-RPC shape, so MCP clients surface them as errors with text. */
import type { Response } from 'express';
import { noteRefusalReason } from './refusal-audit.js';

export function sendJsonRpcError(res: Response, status: number, code: number, message: string, data?: unknown): void {
  if (res.headersSent) return;
  noteRefusalReason(res, message);
  res.status(status).json({ jsonrpc: '2.0', error: { code, message, ...(data !== undefined && { data }) }, id: null });
}
