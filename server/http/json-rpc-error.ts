/** HTTP-level refusals in JSON-RPC shape, so MCP clients surface them as errors with text. */
import type { Response } from 'express';

export function sendJsonRpcError(res: Response, status: number, code: number, message: string, data?: unknown): void {
  if (res.headersSent) return;
  res.status(status).json({ jsonrpc: '2.0', error: { code, message, ...(data !== undefined && { data }) }, id: null });
}
