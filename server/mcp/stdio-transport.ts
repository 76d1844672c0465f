/**
 * The wire of one stdio connection: the SDK's StdioServerTransport (newline-delimited JSON on
 * stdin/stdout, its stream and close handling), plus a direct path for the hottest exchange —
 * a well-formed `tools/call` on a connection whose server has been initialized.
 *
 * Through the SDK every message is parsed by its JSON-RPC message schema, tested against four
 * more schemas on its way through serveStdio and the Protocol class, and a tools/call is
 * checked twice by the request schema and its result once by the result schema: about a tenth
 * of the server's CPU per call, most of it zod. The direct path takes a line that
 * directRequestOf / directToolCallOf recognise as a tools/call the SDK would accept unchanged,
 * hands it to our tool caller (the same function the SDK's handler calls) and writes its
 * answer as the SDK would: `{result, jsonrpc, id}` on one line. Every other line (initialize,
 * notifications, other methods, `_meta` envelopes, anything malformed, anything before the
 * server is initialized) goes to the SDK unchanged, parsed by the SDK's own deserializeMessage.
 */
import type { Readable, Writable } from 'node:stream';
import {
  deserializeMessage,
  isJSONRPCNotification,
  STDIO_DEFAULT_MAX_BUFFER_SIZE,
  type JSONRPCMessage,
  type JSONRPCRequest,
} from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { directRequestOf, directToolAnswer, directToolCallOf } from './direct-request.js';
import type { ToolCaller } from './tool-calls.js';

type RequestId = JSONRPCRequest['id'];

/** Bytes of one incomplete line held while waiting for its newline: the SDK's bound. */
export const stdioLineBytesMax = STDIO_DEFAULT_MAX_BUFFER_SIZE;
/** Direct calls in flight at once; past it a call takes the SDK path (which has no bound of its own either). */
export const stdioDirectCallsMax = 4096;

const newline = 0x0a;

export interface StdioTransportHooks {
  /**
   * The tool caller of the connection's server once it may take calls directly (2025-era
   * instance, initialize answered), else undefined: the call then goes through the SDK.
   */
  readonly directToolCaller: () => ToolCaller | undefined;
  /** After the SDK tears the wire down (client closed stdin, or close()). */
  readonly onClosed: () => void;
}

interface DirectCall {
  cancelled: boolean;
}

export class StdioTransport extends StdioServerTransport {
  /** Bytes after the last newline seen (an incomplete line), or undefined. */
  private pending: Buffer | undefined;
  private wireClosed = false;
  private readonly direct = new Map<RequestId, DirectCall>();

  constructor(stdin: Readable | undefined, stdout: Writable | undefined, private readonly hooks: StdioTransportHooks) {
    super(stdin, stdout);
  }

  /**
   * Replaces the SDK's reader (start() subscribes this field, close() unsubscribes it). Same
   * framing and the same outcomes: lines split on "\n" (a trailing "\r" dropped), a line that
   * is not JSON skipped, a message the SDK's schema refuses reported to onerror, an overlong
   * partial line reported and the connection closed.
   */
  override _ondata = (chunk: Buffer): void => {
    let buffer = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = undefined;
    let start = 0;
    for (let end = buffer.indexOf(newline); end !== -1; end = buffer.indexOf(newline, start)) {
      const line = buffer.toString('utf8', start, end > start && buffer[end - 1] === 0x0d ? end - 1 : end);
      start = end + 1;
      this.handleLine(line);
      if (this.wireClosed) return;
    }
    if (start < buffer.length) {
      buffer = buffer.subarray(start);
      if (buffer.length > stdioLineBytesMax) {
        this.onerror?.(new Error(`ReadBuffer exceeded maximum size of ${stdioLineBytesMax} bytes`));
        this.close().catch(() => undefined);
        return;
      }
      this.pending = buffer;
    }
  };

  override async close(): Promise<void> {
    if (this.wireClosed) return;
    this.wireClosed = true;
    this.pending = undefined;
    // In-flight direct calls end as the SDK's aborted requests do: unanswered.
    for (const call of this.direct.values()) call.cancelled = true;
    this.direct.clear();
    await super.close();
    this.hooks.onClosed();
  }

  private handleLine(line: string): void {
    let body: unknown;
    try {
      body = JSON.parse(line);
    } catch {
      return; // the SDK's ReadBuffer skips a line that is not JSON
    }
    const request = directRequestOf(body);
    if (request !== undefined && this.serveDirect(request)) return;
    let message: JSONRPCMessage;
    try {
      message = deserializeMessage(line);
    } catch (error) {
      this.onerror?.(error as Error);
      return;
    }
    if (isJSONRPCNotification(message) && message.method === 'notifications/cancelled') this.cancelDirect(message.params?.['requestId']);
    try {
      this.onmessage?.(message);
    } catch (error) {
      this.onerror?.(error as Error); // as the SDK's reader does: report, and read on
    }
  }

  /** Serves `request` directly when it is a tools/call the SDK would take unchanged; false (nothing done) otherwise. */
  private serveDirect(request: JSONRPCRequest): boolean {
    const call = directToolCallOf(request);
    if (call === undefined || this.direct.has(request.id) || this.direct.size >= stdioDirectCallsMax) return false;
    const callTool = this.hooks.directToolCaller();
    if (callTool === undefined) return false;
    const id = request.id;
    const inFlight: DirectCall = { cancelled: false };
    this.direct.set(id, inFlight);
    directToolAnswer(callTool, call, id, (error) => this.onerror?.(error))
      .then((answer) => (inFlight.cancelled ? undefined : this.send(answer)))
      .catch((error: unknown) => {
        if (!this.wireClosed) this.onerror?.(new Error(`Failed to send response: ${String(error)}`));
      })
      .finally(() => {
        if (this.direct.get(id) === inFlight) this.direct.delete(id);
      });
    return true;
  }

  /** notifications/cancelled for a direct call: its answer is not sent (the SDK's abort does the same). */
  private cancelDirect(requestId: unknown): void {
    if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
    const call = this.direct.get(requestId);
    if (call === undefined) return;
    call.cancelled = true;
    this.direct.delete(requestId);
  }
}
