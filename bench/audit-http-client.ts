/**
 * A lean MCP client for the audit benchmark: the real Streamable HTTP protocol over real HTTP/1.1
 * on loopback, with none of an SDK client's per-call machinery (web Request/Response objects,
 * zod validation of every message, fetch). One keep-alive connection per client, spoken directly
 * on a TCP socket (bench/audit-http-connection.ts): the benchmark's callers share the machine
 * with the server, so what they spend per call is taken from it.
 *
 * - era 'older' (2025-11-25): POST initialize, read `Mcp-Session-Id`, POST
 *   notifications/initialized (202), then each tools/call is one POST carrying the session and
 *   protocol-version headers; DELETE ends the session. No GET stream (optional in the spec: this
 *   client wants no server-initiated messages).
 * - era 'newer' (2026-07-28): POST server/discover, then each tools/call is one self-contained POST
 *   with the `_meta` envelope (protocol version, client info, capabilities) and the standard
 *   `Mcp-Method` / `Mcp-Name` / `MCP-Protocol-Version` headers.
 *
 * Answers may be one JSON body or an SSE stream (the spec lets the server choose); both are read,
 * and each answer is checked: HTTP status, JSON-RPC id, result present.
 */
import { HttpConnection, type HttpAnswer } from './audit-http-connection.js';

export const olderRevision = '2025-11-25';
export const newerRevision = '2026-07-28';
/** An answer larger than this is refused (the benchmark's answers are a few hundred bytes). */
export const answerBytesMax = 4 * 1024 * 1024;
/** One call waits this long for its answer before failing. */
export const callTimeoutMs = 60_000;

const clientInfo = { name: 'ioboxx-bench-lean-client', version: '0.0.0' } as const;
const metaKeys = {
  protocolVersion: 'io.modelcontextprotocol/protocolVersion',
  clientInfo: 'io.modelcontextprotocol/clientInfo',
  clientCapabilities: 'io.modelcontextprotocol/clientCapabilities',
} as const;

export interface LeanToolResult {
  readonly isError?: boolean;
  readonly structuredContent?: Record<string, unknown>;
  readonly content: ReadonlyArray<{ type: string; text?: string }>;
}

export class LeanMcpHttpClient {
  private nextId = 1;
  private sessionId: string | undefined;
  private closed = false;

  private constructor(
    private readonly url: URL,
    readonly era: 'older' | 'newer',
    private readonly connection: HttpConnection,
    private readonly extraHeaders: Readonly<Record<string, string>>,
  ) {}

  /** `extraHeaders` go on every request (e.g. `authorization` for a server that verifies tokens). */
  static async connect(url: string, era: 'older' | 'newer', extraHeaders: Readonly<Record<string, string>> = {}): Promise<LeanMcpHttpClient> {
    const parsed = new URL(url);
    const client = new LeanMcpHttpClient(parsed, era, new HttpConnection(parsed, callTimeoutMs, answerBytesMax), extraHeaders);
    try {
      if (era === 'older') await client.initialize();
      else await client.discover();
    } catch (error) {
      client.connection.destroy();
      throw error;
    }
    return client;
  }

  async callTool(name: string, args: Record<string, unknown>): Promise<LeanToolResult> {
    return (await this.request('tools/call', { name, arguments: args }, name)) as unknown as LeanToolResult;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.sessionId !== undefined) {
        const answer = await this.exchange('DELETE', this.headers(), undefined);
        if (answer.status !== 200 && answer.status !== 404) throw new Error(`DELETE session answered ${answer.status}`);
      }
    } finally {
      this.connection.destroy();
    }
  }

  private async initialize(): Promise<void> {
    const id = this.nextId++;
    const answer = await this.exchange('POST', this.headers(), {
      jsonrpc: '2.0', id, method: 'initialize',
      params: { protocolVersion: olderRevision, capabilities: {}, clientInfo },
    });
    const result = resultOf(answer, id, 'initialize') as { protocolVersion?: unknown };
    if (result.protocolVersion !== olderRevision) throw new Error(`initialize: server chose protocol ${String(result.protocolVersion)}`);
    const session = answer.headers['mcp-session-id'];
    if (typeof session !== 'string' || session.length === 0) throw new Error('initialize: no Mcp-Session-Id in the answer');
    this.sessionId = session;
    const initialized = await this.exchange('POST', this.headers(), { jsonrpc: '2.0', method: 'notifications/initialized' });
    if (initialized.status !== 202) throw new Error(`notifications/initialized answered ${initialized.status}: ${initialized.body.slice(0, 300)}`);
  }

  private async discover(): Promise<void> {
    const result = (await this.request('server/discover', {})) as { supportedVersions?: unknown };
    if (!Array.isArray(result.supportedVersions) || !result.supportedVersions.includes(newerRevision)) {
      throw new Error(`server/discover: the server does not serve ${newerRevision} (${JSON.stringify(result.supportedVersions)})`);
    }
  }

  private headers(method?: string, name?: string): Record<string, string> {
    const headers: Record<string, string> = { ...this.extraHeaders, accept: 'application/json, text/event-stream', 'content-type': 'application/json' };
    if (this.era === 'older') {
      if (this.sessionId !== undefined) {
        headers['mcp-session-id'] = this.sessionId;
        headers['mcp-protocol-version'] = olderRevision;
      }
    } else {
      headers['mcp-protocol-version'] = newerRevision;
      if (method !== undefined) headers['mcp-method'] = method;
      if (name !== undefined) headers['mcp-name'] = name;
    }
    return headers;
  }

  private async request(method: string, params: Record<string, unknown>, name?: string): Promise<Record<string, unknown>> {
    if (this.closed) throw new Error('client closed');
    const id = this.nextId++;
    const sent = this.era === 'newer'
      ? { ...params, _meta: { [metaKeys.protocolVersion]: newerRevision, [metaKeys.clientInfo]: clientInfo, [metaKeys.clientCapabilities]: {} } }
      : params;
    const answer = await this.exchange('POST', this.headers(method, name), { jsonrpc: '2.0', id, method, params: sent });
    return resultOf(answer, id, method);
  }

  private exchange(method: 'POST' | 'DELETE', headers: Record<string, string>, body: unknown): Promise<HttpAnswer> {
    return this.connection.exchange(method, this.url.pathname + this.url.search, headers, body === undefined ? undefined : JSON.stringify(body));
  }
}

/** The JSON-RPC result of `id` in a JSON or SSE answer; throws on an HTTP or JSON-RPC error. */
function resultOf(answer: HttpAnswer, id: number, method: string): Record<string, unknown> {
  if (answer.status !== 200) throw new Error(`${method} answered HTTP ${answer.status}: ${answer.body.slice(0, 300)}`);
  const type = answer.headers['content-type'] ?? '';
  const messages = type.startsWith('text/event-stream') ? sseMessages(answer.body) : [JSON.parse(answer.body) as unknown];
  for (const message of messages.flat()) {
    const m = message as { id?: unknown; result?: Record<string, unknown>; error?: { code: number; message: string } };
    if (m.id !== id) continue;
    if (m.error !== undefined) throw new Error(`${method} failed: ${m.error.code} ${m.error.message}`);
    if (m.result === undefined || typeof m.result !== 'object') throw new Error(`${method}: answer without a result`);
    return m.result;
  }
  throw new Error(`${method}: no answer to request ${id} in: ${answer.body.slice(0, 300)}`);
}

/** The JSON messages of an SSE body's `data:` fields (one event may span several lines). */
function sseMessages(body: string): unknown[] {
  const messages: unknown[] = [];
  for (const event of body.split(/\r?\n\r?\n/)) {
    const data = event.split(/\r?\n/).filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trimStart()).join('\n');
    if (data.length > 0) messages.push(JSON.parse(data));
  }
  return messages;
}
