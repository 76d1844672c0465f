/**
 * The POST of one request a 2025-era session serves directly (session-transport.ts). Its answer
 * is one JSON body, as the SDK transport's JSON mode sends it, unless a message related to the
 * request comes first: the progress of a tenant's store opening under a call that passed a
 * progressToken (progress-notifications.ts). Then the POST is answered as the SDK's stream mode
 * answers one: an SSE stream of those messages and then the answer, each a `message` event, and
 * the stream ends with the answer. The client accepts both (a request is taken directly only when
 * its Accept names application/json and text/event-stream), and one that asked for no progress
 * still gets one JSON body.
 */
import type { ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';

/** One SSE event as the SDK transport writes it (no event id: a direct request's stream is not resumed). */
function sseEvent(json: string): string {
  return `event: message\ndata: ${json}\n\n`;
}

/** A JSON body answer (unless the client left or an answer began). */
export function answerJson(res: ServerResponse, status: number, json: string, sessionId: string | undefined): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) };
  if (sessionId !== undefined) headers['mcp-session-id'] = sessionId;
  res.writeHead(status, headers);
  res.end(json);
}

export class DirectExchange {
  private streaming = false;

  constructor(readonly res: ServerResponse) {}

  /** The client left, or the answer was written: nothing more to write. */
  private get over(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /**
   * A message related to the request, before its answer: starts the stream (with the session's
   * id) if it has not begun. Dropped while the client is not reading what was written (progress
   * is advisory: the next one says more), so a request owes its client at most one socket
   * buffer of them.
   */
  notify(message: JSONRPCMessage, sessionId: string | undefined): void {
    if (this.over || this.res.writableNeedDrain) return;
    if (!this.streaming) {
      if (this.res.headersSent) return;
      const headers: Record<string, string> = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' };
      if (sessionId !== undefined) headers['mcp-session-id'] = sessionId;
      this.res.writeHead(200, headers);
      this.streaming = true;
    }
    this.res.write(sseEvent(JSON.stringify(message)));
  }

  /**
   * The answer `json` (a JSON-RPC response): the stream's last event once the stream has begun,
   * else the JSON body (`status`, `sessionId`). On a stream `streamedJson` replaces it where the
   * body's answer fits only a status of its own (an HTTP 404's id-less error): there the answer
   * names the request.
   */
  answer(status: number, json: string, sessionId: string | undefined, streamedJson = json): void {
    if (this.over) return;
    if (this.streaming) this.res.end(sseEvent(streamedJson));
    else answerJson(this.res, status, json, sessionId);
  }
}
