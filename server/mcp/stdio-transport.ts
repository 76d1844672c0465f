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
 *
 * Where the SDK's reader would stay silent or give up, this one answers as JSON-RPC 2.0 says, so a
 * client never waits on a line it sent: a line that is not JSON gets -32700, a message the SDK
 * refuses gets -32600 (with its id when one can be read), a line over stdioLineBytesMax gets
 * -32600 and is skipped to its newline, the connection going on. And where the SDK aborts the
 * requests in flight when stdin ends, this one answers every request already read, then closes:
 * their writes commit either way, and the client should learn that they did.
 */
import type { Readable, Writable } from 'node:stream';
import {
  deserializeMessage,
  isJSONRPCErrorResponse,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  ProtocolErrorCode,
  serializeMessage,
  STDIO_DEFAULT_MAX_BUFFER_SIZE,
  type JSONRPCMessage,
  type JSONRPCRequest,
} from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { directRequestOf, directToolAnswer, directToolCallOf } from './direct-request.js';
import { batchRefusal, invalidPostBody, invalidRequestMessage, readableIdOf, type AnswerId } from './json-rpc-message.js';
import { isJsonObject } from '../../storage/json-object.js';
import type { ToolCaller } from './tool-calls.js';

type RequestId = JSONRPCRequest['id'];

/** Bytes of one line (one message), the SDK's bound: a longer line is answered -32600 and skipped. */
export const stdioLineBytesMax = STDIO_DEFAULT_MAX_BUFFER_SIZE;
/** Direct calls in flight at once; past it a call takes the SDK path (which has no bound of its own either). */
export const stdioDirectCallsMax = 4096;
/**
 * Bytes of answers stdout may hold unwritten (a client that stops reading them) before stdin is
 * read no further: the lines not yet read wait in the pipe, and reading goes on once stdout
 * drains. Without it every answer of a client that only writes stays in memory, without bound.
 * The requests already read are still answered, so the backlog may pass it by their answers.
 */
export const stdioOutputBacklogBytesMax = 4 * 1024 * 1024;

const newline = 0x0a;

/** The answer to a request the server stopped working on when it shut down. */
function shutdownAnswer(id: RequestId): JSONRPCMessage {
  const message = 'the server shut down before this call finished; a write it made may still have been committed: read before retrying';
  return { jsonrpc: '2.0', id, error: { code: ProtocolErrorCode.InternalError, message } };
}

export type LineRefusal = 'parse_error' | 'invalid_request' | 'limit_exceeded';

/** What an invalid message asked for, as far as it can be read: its id and method, in one line. */
function askedOf(body: unknown): string {
  const message = isJsonObject(body) ? body : undefined;
  if (message === undefined) return Array.isArray(body) ? `a batch of ${body.length}` : `a JSON ${body === null ? 'null' : typeof body}`;
  const id = readableIdOf(body);
  const method = typeof message['method'] === 'string' ? JSON.stringify(message['method'].slice(0, methodCharsLogged)) : undefined;
  return [id === null ? 'no readable id' : `id ${JSON.stringify(id)}`, method === undefined ? 'no method' : `method ${method}`].join(', ');
}
/** A refused message's method is logged this long at most (a client's string, of any length). */
const methodCharsLogged = 128;

export interface StdioTransportHooks {
  /**
   * The tool caller of the connection's server once it may take calls directly (2025-era
   * instance, initialize answered), else undefined: the call then goes through the SDK.
   */
  readonly directToolCaller: () => ToolCaller | undefined;
  /** After the SDK tears the wire down (client closed stdin, or close()). */
  readonly onClosed: () => void;
  /** What is wrong with a subscriptions/listen request the SDK's router would accept (its URIs), or undefined. */
  readonly listenProblem?: (message: JSONRPCRequest) => string | undefined;
  /**
   * A line this transport refused itself (not JSON, not a message the SDK accepts, too long), for
   * the audit and the log: `reason` is one line naming what was refused (never the line itself).
   */
  readonly onLineRefused?: (outcome: LineRefusal, reason: string) => void;
  /** Tests: a smaller stdioOutputBacklogBytesMax. */
  readonly outputBacklogBytesMax?: number;
}

interface DirectCall {
  cancelled: boolean;
}

/**
 * A JSON-RPC batch being served (a 2025-03-26 connection): its requests' ids in the batch's
 * order, and the answers in hand. Its answers leave together, as one array on one line, once
 * every request is answered (a cancelled one has none).
 */
interface PendingBatch {
  readonly ids: RequestId[];
  readonly answers: Map<RequestId, JSONRPCMessage>;
}

export class StdioTransport extends StdioServerTransport {
  /**
   * The incomplete line after the last newline seen, as the chunks it came in: joined once, when
   * its newline arrives, so a long line is copied once rather than again with every chunk.
   */
  private pendingChunks: Buffer[] = [];
  private pendingBytes = 0;
  /** The rest of a line over stdioLineBytesMax, already answered, is dropped up to its newline. */
  private skippingLine = false;
  /** stdin has ended: nothing more is read; the wire closes once every request read is answered. */
  private inputEnded = false;
  private wireClosed = false;
  /** Past close(): nothing more is written (the SDK's own send refused then too). */
  private outputClosed = false;
  private readonly direct = new Map<RequestId, DirectCall>();
  /** The protocol revision initialize negotiated (undefined before): it decides whether batches are served. */
  private negotiatedVersion: string | undefined;
  /** The batch each request of a batch in flight belongs to, until answered. */
  private readonly batchOf = new Map<RequestId, PendingBatch>();
  /** Requests handed to the SDK and not yet answered (subscriptions/listen aside: it lasts as long as the client wants). */
  private readonly sdkRequests = new Set<RequestId>();
  private readonly input: Readable;
  private readonly output: Writable;
  private readonly outputBacklogBytesMax: number;
  /**
   * The rest of a chunk not yet read because stdout's backlog passed outputBacklogBytesMax
   * (stdin is paused meanwhile); read, then stdin resumed, once stdout drains.
   */
  private heldInput: Buffer | undefined;

  constructor(stdin: Readable | undefined, stdout: Writable | undefined, private readonly hooks: StdioTransportHooks) {
    super(stdin, stdout);
    this.input = stdin ?? process.stdin;
    this.output = stdout ?? process.stdout;
    this.outputBacklogBytesMax = hooks.outputBacklogBytesMax ?? stdioOutputBacklogBytesMax;
    // Reading resumes on stdout's 'drain', which a stream emits only once its buffer passed its high-water mark.
    if (!(this.outputBacklogBytesMax >= this.output.writableHighWaterMark)) {
      throw new Error(`outputBacklogBytesMax (${this.outputBacklogBytesMax}) must be at least stdout's high-water mark (${this.output.writableHighWaterMark})`);
    }
  }

  /**
   * Replaces the SDK's reader (start() subscribes this field, close() unsubscribes it). Same
   * framing: lines split on "\n" (a trailing "\r" dropped); what it answers is in handleLine.
   */
  override _ondata = (chunk: Buffer): void => {
    if (this.output.writableLength > this.outputBacklogBytesMax) return this.holdInput(chunk);
    let start = 0;
    if (this.skippingLine) {
      const end = chunk.indexOf(newline);
      if (end === -1) return;
      this.skippingLine = false;
      start = end + 1;
    }
    for (let end = chunk.indexOf(newline, start); end !== -1; end = chunk.indexOf(newline, start)) {
      this.takeLine(this.completedLine(chunk.subarray(start, end)));
      start = end + 1;
      if (this.wireClosed) return;
      if (this.output.writableLength > this.outputBacklogBytesMax) return this.holdInput(chunk.subarray(start));
    }
    if (start === chunk.length) return;
    // The line so far may end in the "\r" of a "\r\n" split across chunks: that byte is not the line's.
    if (this.pendingBytes + chunk.length - start > stdioLineBytesMax + 1) {
      this.dropPending();
      this.refuseOverlongLine();
      this.skippingLine = true;
      return;
    }
    this.pendingChunks.push(chunk.subarray(start));
    this.pendingBytes += chunk.length - start;
  };

  /**
   * Stops reading stdin until stdout drains, keeping `rest` (the unread part of the chunk being
   * read) to be read first. The client's further lines wait in the pipe, so its writes block.
   */
  private holdInput(rest: Buffer): void {
    if (this.heldInput !== undefined) {
      // A chunk already on its way when stdin paused: it comes after the rest held before it.
      this.heldInput = Buffer.concat([this.heldInput, rest]);
      return;
    }
    this.heldInput = rest;
    this.input.pause();
    this.output.once('drain', this.readHeldInput);
  }

  private readonly readHeldInput = (): void => {
    const rest = this.heldInput;
    this.heldInput = undefined;
    if (this.wireClosed || rest === undefined) return;
    this._ondata(rest);
    if (this.heldInput !== undefined) return; // over the bound again: paused on, until the next drain
    if (!this.inputEnded) return void this.input.resume();
    // stdin ended while this rest waited: its last line without a newline is not a message.
    this.dropPending();
    this.closeIfAnswered();
  };

  /** The line that `tail` (the bytes before its newline) completes: the pending chunks, joined once, then tail. */
  private completedLine(tail: Buffer): Buffer {
    if (this.pendingChunks.length === 0) return tail;
    this.pendingChunks.push(tail);
    const line = Buffer.concat(this.pendingChunks, this.pendingBytes + tail.length);
    this.dropPending();
    return line;
  }

  /** One line, its newline taken off: a trailing "\r" dropped, then refused when over stdioLineBytesMax, else handled. */
  private takeLine(line: Buffer): void {
    const length = line.length > 0 && line[line.length - 1] === 0x0d ? line.length - 1 : line.length;
    if (length > stdioLineBytesMax) this.refuseOverlongLine();
    else this.handleLine(line.toString('utf8', 0, length));
  }

  private dropPending(): void {
    this.pendingChunks = [];
    this.pendingBytes = 0;
  }

  /**
   * stdin ended (the client closed it, or the process stopped reading it on a signal). The SDK
   * would close at once, leaving the requests in flight unanswered; here they finish first.
   */
  override _onstdinclose = (): void => {
    if (this.inputEnded || this.wireClosed) return;
    this.inputEnded = true;
    if (this.heldInput !== undefined) return; // read first, once stdout drains (readHeldInput)
    this.dropPending();
    this.closeIfAnswered();
  };

  override async close(): Promise<void> {
    if (this.wireClosed) return;
    this.wireClosed = true;
    this.dropPending();
    this.heldInput = undefined;
    this.output.off('drain', this.readHeldInput);
    const unanswered = [...this.direct.keys(), ...this.sdkRequests];
    // In-flight direct calls end as the SDK's aborted requests do: unanswered...
    for (const call of this.direct.values()) call.cancelled = true;
    this.direct.clear();
    this.sdkRequests.clear();
    // ...unless the wire closes while finishing the requests read before stdin ended (the
    // shutdown bound passed): the client is waiting for those, so each gets an error, not silence.
    if (this.inputEnded) await Promise.all(unanswered.map((id) => this.send(shutdownAnswer(id)).catch(() => undefined)));
    await super.close();
    this.outputClosed = true;
    this.hooks.onClosed();
  }

  /**
   * The SDK's send (one JSON line on stdout, settled once stdout took it), without its 'drain'
   * and 'error' listener per message: a client that stops reading leaves up to
   * outputBacklogBytesMax of answers waiting, each one a pair of listeners with the SDK's.
   * stdout's own errors still reach the SDK's handler, which closes the wire.
   */
  override send(message: JSONRPCMessage): Promise<void> {
    if (this.outputClosed) return Promise.reject(new Error('the stdio connection is closed'));
    const answerId = isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message) ? message.id : undefined;
    const batch = answerId === undefined ? undefined : this.batchOf.get(answerId);
    if (answerId !== undefined && batch !== undefined) {
      // One of a batch's answers: held until the batch's last, then all of them as one array.
      this.batchOf.delete(answerId);
      batch.answers.set(answerId, message);
      const sent = this.flushBatch(batch);
      this.settleSdkRequest(answerId);
      return sent;
    }
    // Written before a settled request may close the wire.
    const sent = this.writeLine(serializeMessage(message));
    if (answerId !== undefined) this.settleSdkRequest(answerId);
    return sent;
  }

  /** The server calls this as it answers initialize (through serveStdio's channel). */
  setProtocolVersion(version: string): void {
    this.negotiatedVersion = version;
  }

  private writeLine(line: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const taken = this.output.write(line, (error) => (error ? reject(error) : resolve()));
      if (taken) resolve();
    });
  }

  /** Writes `batch`'s answers as one array once every request still awaited has one; nothing before (or for a batch left with none). */
  private flushBatch(batch: PendingBatch): Promise<void> {
    if (batch.ids.some((id) => this.batchOf.get(id) === batch)) return Promise.resolve();
    const answers = batch.ids.flatMap((id) => batch.answers.get(id) ?? []);
    if (answers.length === 0) return Promise.resolve();
    return this.writeLine(`${JSON.stringify(answers)}\n`);
  }

  /**
   * A JSON-RPC batch on a connection whose revision has them (2025-03-26: MCP says implementations
   * MUST support receiving them; 2025-06-18 removed them): each message served as if on its own
   * line, the answers written together as one array. A batch holding a message the SDK would
   * refuse is refused whole, as an HTTP session refuses it.
   */
  private serveBatch(body: unknown[]): void {
    const refused = invalidPostBody(body);
    if (refused !== undefined) {
      this.answerError(refused.id, ProtocolErrorCode.InvalidRequest, refused.message);
      this.hooks.onLineRefused?.('invalid_request', refused.message);
      return;
    }
    const ids = body.filter((message) => isJSONRPCRequest(message)).map((message) => (message as JSONRPCRequest).id);
    const inFlight = (id: RequestId) => this.batchOf.has(id) || this.direct.has(id) || this.sdkRequests.has(id);
    if (new Set(ids).size !== ids.length || ids.some(inFlight)) {
      const message = 'Invalid Request: the ids of a batch\'s requests must differ from each other and from those of requests in flight';
      this.answerError(null, ProtocolErrorCode.InvalidRequest, message);
      this.hooks.onLineRefused?.('invalid_request', message);
      return;
    }
    const batch: PendingBatch = { ids, answers: new Map() };
    for (const id of ids) this.batchOf.set(id, batch);
    for (const message of body) {
      if (this.wireClosed) return;
      this.handleBody(message, JSON.stringify(message));
    }
  }

  private handleLine(line: string): void {
    let body: unknown;
    try {
      body = JSON.parse(line);
    } catch {
      // A blank line carries no message: nothing to answer.
      if (line.trim() !== '') {
        const message = 'Parse error: the line is not valid JSON';
        this.answerError(null, ProtocolErrorCode.ParseError, message);
        this.hooks.onLineRefused?.('parse_error', `${message} (${Buffer.byteLength(line)} bytes)`);
      }
      return;
    }
    if (Array.isArray(body) && body.length > 0 && this.negotiatedVersion !== undefined && batchRefusal(this.negotiatedVersion) === undefined) {
      return this.serveBatch(body);
    }
    this.handleBody(body, line);
  }

  /** One message (`body`, parsed from `line`): served directly, refused, or handed to the SDK. */
  private handleBody(body: unknown, line: string): void {
    const request = directRequestOf(body);
    if (request !== undefined && this.serveDirect(request)) return;
    let message: JSONRPCMessage;
    try {
      message = deserializeMessage(line);
    } catch {
      // The schema's own error is a page of union branches: the log gets one line instead (onLineRefused).
      this.answerError(readableIdOf(body), ProtocolErrorCode.InvalidRequest, invalidRequestMessage);
      this.hooks.onLineRefused?.('invalid_request', `${invalidRequestMessage} (${askedOf(body)})`);
      return;
    }
    if (isJSONRPCRequest(message) && message.method === 'subscriptions/listen') {
      const problem = this.hooks.listenProblem?.(message);
      if (problem !== undefined) {
        this.answerError(message.id, ProtocolErrorCode.InvalidParams, problem);
        return;
      }
    }
    if (isJSONRPCRequest(message) && message.method !== 'subscriptions/listen') this.sdkRequests.add(message.id);
    if (isJSONRPCNotification(message) && message.method === 'notifications/cancelled') this.cancelled(message.params?.['requestId']);
    try {
      this.onmessage?.(message);
    } catch (error) {
      this.onerror?.(error as Error); // as the SDK's reader does: report, and read on
    }
  }

  private refuseOverlongLine(): void {
    const message = `message exceeds ${stdioLineBytesMax} bytes (stdioLineBytesMax)`;
    this.answerError(null, ProtocolErrorCode.InvalidRequest, message);
    this.hooks.onLineRefused?.('limit_exceeded', message);
  }

  private answerError(id: AnswerId, code: number, message: string): void {
    // The SDK's type has no `id: null`; JSON-RPC requires it when the id cannot be read.
    this.send({ jsonrpc: '2.0', id, error: { code, message } } as JSONRPCMessage).catch((error: unknown) => {
      if (!this.wireClosed) this.onerror?.(new Error(`Failed to send response: ${String(error)}`));
    });
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
        if (this.direct.get(id) !== inFlight) return;
        this.direct.delete(id);
        this.closeIfAnswered();
      });
    return true;
  }

  /** notifications/cancelled: a direct call's answer is not sent (the SDK's abort does the same), and no request waits on it. */
  private cancelled(requestId: unknown): void {
    if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
    const batch = this.batchOf.get(requestId);
    if (batch !== undefined) {
      // Cancelled: no answer of its own in the batch's array, which need not wait for it.
      this.batchOf.delete(requestId);
      this.flushBatch(batch).catch(() => undefined);
    }
    this.settleSdkRequest(requestId);
    const call = this.direct.get(requestId);
    if (call === undefined) return;
    call.cancelled = true;
    this.direct.delete(requestId);
    this.closeIfAnswered();
  }

  private settleSdkRequest(id: RequestId): void {
    if (this.sdkRequests.delete(id)) this.closeIfAnswered();
  }

  /** After stdin ended: close once no request read is left unanswered. */
  private closeIfAnswered(): void {
    if (this.inputEnded && this.heldInput === undefined && this.direct.size === 0 && this.sdkRequests.size === 0) this.close().catch(() => undefined);
  }
}
