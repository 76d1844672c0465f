/**
 * A lean MCP client over stdio for the audit benchmark: JSON-RPC lines on the server's stdin and
 * stdout (the 2025-11-25 protocol: initialize, notifications/initialized, then tools/call), many
 * calls in flight at once, each answer matched by id. This is how one agent host with many
 * concurrent tool calls uses a local server; the benchmark's callers share the one connection.
 *
 * Every line the server writes on stdout must be a JSON-RPC message (stdout carries only MCP
 * messages): anything else fails the client. Answers are checked: id, result present.
 */
import type { Readable, Writable } from 'node:stream';
import { answerBytesMax, callTimeoutMs, olderRevision, type LeanToolResult } from './audit-http-client.js';

const clientInfo = { name: 'ioboxx-bench-lean-stdio-client', version: '0.0.0' } as const;

interface Pending {
  readonly method: string;
  resolve(result: Record<string, unknown>): void;
  reject(error: Error): void;
  readonly timer: NodeJS.Timeout;
}

export class LeanMcpStdioClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Bytes of a line not yet ended (answers arrive in arbitrary chunks). */
  private partial = '';
  private failure: Error | undefined;

  private constructor(private readonly input: Readable, private readonly output: Writable) {
    input.setEncoding('utf8');
    input.on('data', (chunk: string) => this.onData(chunk));
    input.once('end', () => this.fail(new Error('server closed its stdout')));
    output.on('error', (error: Error) => this.fail(error));
  }

  /** Connects over a server's stdout (`input`) and stdin (`output`): initialize, then notifications/initialized. */
  static async connect(input: Readable, output: Writable): Promise<LeanMcpStdioClient> {
    const client = new LeanMcpStdioClient(input, output);
    const result = await client.request('initialize', { protocolVersion: olderRevision, capabilities: {}, clientInfo });
    if (result.protocolVersion !== olderRevision) throw new Error(`initialize: server chose protocol ${String(result.protocolVersion)}`);
    client.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return client;
  }

  async callTool(name: string, args: Record<string, unknown>): Promise<LeanToolResult> {
    return (await this.request('tools/call', { name, arguments: args })) as unknown as LeanToolResult;
  }

  private request(method: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer within ${callTimeoutMs} ms`));
      }, callTimeoutMs);
      this.pending.set(id, { method, resolve, reject, timer });
      this.send({ jsonrpc: '2.0', id, method, params });
    });
  }

  private send(message: unknown): void {
    this.output.write(`${JSON.stringify(message)}\n`);
  }

  private onData(chunk: string): void {
    let text = this.partial + chunk;
    let newline: number;
    while ((newline = text.indexOf('\n')) >= 0) {
      const line = text.slice(0, newline);
      text = text.slice(newline + 1);
      if (line.trim().length > 0) this.onLine(line);
    }
    if (text.length > answerBytesMax) this.fail(new Error(`a line on the server's stdout exceeds ${answerBytesMax} bytes`));
    this.partial = text;
  }

  private onLine(line: string): void {
    let message: { id?: unknown; method?: unknown; result?: Record<string, unknown>; error?: { code: number; message: string } };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      this.fail(new Error(`not JSON on the server's stdout: ${line.slice(0, 200)}`));
      return;
    }
    if (message.method !== undefined) return; // a notification from the server: nothing this client acts on
    const pending = typeof message.id === 'number' ? this.pending.get(message.id) : undefined;
    if (!pending) {
      this.fail(new Error(`an answer to no request of this client: ${line.slice(0, 200)}`));
      return;
    }
    this.pending.delete(message.id as number);
    clearTimeout(pending.timer);
    if (message.error !== undefined) pending.reject(new Error(`${pending.method} failed: ${message.error.code} ${message.error.message}`));
    else if (message.result === undefined || typeof message.result !== 'object') pending.reject(new Error(`${pending.method}: answer without a result`));
    else pending.resolve(message.result);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(this.failure);
    }
    this.pending.clear();
  }
}
