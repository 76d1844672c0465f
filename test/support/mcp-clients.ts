/**
 * Real MCP clients of both protocol eras behind one small interface, for transport and
 * end-to-end tests:
 * - older era: `@modelcontextprotocol/sdk` 1.x Client (2025-era `initialize`), over stdio,
 *   Streamable HTTP (sessionful) and the legacy HTTP+SSE transport;
 * - newer era: `@modelcontextprotocol/client` 2.x pinned to 2026-07-28 (`server/discover`,
 *   per-request envelope, `subscriptions/listen`), over stdio and Streamable HTTP.
 */
import { Client as OlderClient } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport as OlderSseTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StdioClientTransport as OlderStdioTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as OlderHttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport as OlderTransport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ResourceUpdatedNotificationSchema, type JSONRPCMessage as OlderMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Readable, Writable } from 'node:stream';
import { Client as NewerClient, StreamableHTTPClientTransport as NewerHttpTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport as NewerStdioTransport } from '@modelcontextprotocol/client/stdio';
import { newerRevision } from './raw-http-session.js';

export { newerRevision };

export type Era = 'older' | 'newer';

export interface ToolEntry {
  readonly name: string;
  readonly description?: string;
  readonly inputSchema: Record<string, unknown>;
  readonly outputSchema?: Record<string, unknown>;
  readonly annotations?: Record<string, unknown>;
}

export interface ToolResult {
  readonly isError?: boolean;
  readonly structuredContent?: Record<string, unknown>;
  readonly content: ReadonlyArray<{ type: string; text?: string }>;
}

export interface ErrorBody {
  readonly code: string;
  readonly message: string;
  readonly hint?: string;
}

export interface Watch {
  close(): Promise<void>;
}

export interface McpTestClient {
  readonly era: Era;
  listTools(): Promise<ToolEntry[]>;
  callTool(name: string, args?: Record<string, unknown>): Promise<ToolResult>;
  listResources(cursor?: string): Promise<{ resources: Array<{ uri: string; name: string }>; nextCursor?: string }>;
  listResourceTemplates(): Promise<Array<{ uriTemplate: string; name: string }>>;
  readResource(uri: string): Promise<{ contents: Array<{ uri: string; text?: string }> }>;
  /** older: resources/subscribe; newer: subscriptions/listen. Resolves once the server acknowledged. */
  watchResource(uri: string): Promise<Watch>;
  /** The next notifications/resources/updated URI (queued from connect on). */
  nextResourceUpdate(): Promise<string>;
  /** Updates received so far and not yet taken. */
  pendingResourceUpdates(): readonly string[];
  close(): Promise<void>;
}

export interface StdioServerSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  /** Default 'inherit' would mix server logs into test output; tests usually pass 'pipe' or 'ignore'. */
  readonly stderr?: 'pipe' | 'inherit' | 'ignore';
}

export interface HttpServerSpec {
  readonly url: string | URL;
  readonly headers?: Record<string, string>;
}

/** The {error} body of an isError tool result (carried as JSON text). */
export function toolErrorOf(result: ToolResult): ErrorBody | undefined {
  if (result.isError !== true) return undefined;
  const text = result.content.find((c) => c.type === 'text')?.text;
  if (text === undefined) return undefined;
  const parsed = JSON.parse(text) as { error?: ErrorBody };
  return parsed.error;
}

/** How long a test waits for the next update before it fails saying so (not as the test's own timeout, which names no step). */
const updateWaitMsMax = 20_000;

/** A FIFO of update URIs with awaiting readers: no sleeps, tests wait for the event. */
class UpdateQueue {
  private readonly uris: string[] = [];
  private readonly waiters: Array<(uri: string) => void> = [];
  private delivered = 0;
  push(uri: string): void {
    this.delivered++;
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter(uri);
    else this.uris.push(uri);
  }
  next(): Promise<string> {
    const uri = this.uris.shift();
    if (uri !== undefined) return Promise.resolve(uri);
    return new Promise((resolve, reject) => {
      const waiter = (got: string) => {
        clearTimeout(timer);
        resolve(got);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no resource update within ${updateWaitMsMax} ms (${this.delivered} received before)`));
      }, updateWaitMsMax);
      this.waiters.push(waiter);
    });
  }
  pending(): readonly string[] {
    return [...this.uris];
  }
}

function childEnv(spec: StdioServerSpec): Record<string, string> {
  const inherited: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) inherited[key] = value;
  return { ...inherited, ...spec.env };
}

/** Both SDKs' stdio transports take the same spawn parameters. */
function stdioParameters(spec: StdioServerSpec) {
  return {
    command: spec.command,
    args: [...spec.args],
    env: childEnv(spec),
    stderr: spec.stderr ?? 'inherit',
    ...(spec.cwd !== undefined && { cwd: spec.cwd }),
  };
}

const clientInfo = { name: 'ioboxx-test-client', version: '0.0.0' };

function olderFacade(client: OlderClient): McpTestClient {
  const updates = new UpdateQueue();
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (note) => updates.push(note.params.uri));
  return {
    era: 'older',
    listTools: async () => (await client.listTools()).tools as ToolEntry[],
    callTool: async (name, args) => (await client.callTool({ name, arguments: args ?? {} })) as ToolResult,
    listResources: async (cursor) => client.listResources(cursor === undefined ? {} : { cursor }),
    listResourceTemplates: async () => (await client.listResourceTemplates()).resourceTemplates,
    readResource: async (uri) => (await client.readResource({ uri })) as { contents: Array<{ uri: string; text?: string }> },
    watchResource: async (uri) => {
      await client.subscribeResource({ uri });
      return { close: async () => void (await client.unsubscribeResource({ uri })) };
    },
    nextResourceUpdate: () => updates.next(),
    pendingResourceUpdates: () => updates.pending(),
    close: () => client.close(),
  };
}

function newerFacade(client: NewerClient): McpTestClient {
  const updates = new UpdateQueue();
  client.setNotificationHandler('notifications/resources/updated', (note) => updates.push(note.params.uri));
  return {
    era: 'newer',
    listTools: async () => (await client.listTools(undefined, { cacheMode: 'bypass' })).tools as unknown as ToolEntry[],
    callTool: async (name, args) => (await client.callTool({ name, arguments: args ?? {} })) as unknown as ToolResult,
    // A raw request, one page: the 2.x client's listResources() without a cursor walks and
    // aggregates every page (and caches the aggregate).
    listResources: async (cursor) => client.request({ method: 'resources/list', params: cursor === undefined ? {} : { cursor } }),
    listResourceTemplates: async () => (await client.listResourceTemplates(undefined, { cacheMode: 'bypass' })).resourceTemplates,
    readResource: async (uri) => (await client.readResource({ uri }, { cacheMode: 'bypass' })) as unknown as { contents: Array<{ uri: string; text?: string }> },
    watchResource: async (uri) => {
      const subscription = await client.listen({ resourceSubscriptions: [uri] });
      return { close: () => subscription.close() };
    },
    nextResourceUpdate: () => updates.next(),
    pendingResourceUpdates: () => updates.pending(),
    close: () => client.close(),
  };
}

function newerClient(): NewerClient {
  return new NewerClient(clientInfo, { versionNegotiation: { mode: { pin: newerRevision } } });
}

export async function connectOlderStdio(spec: StdioServerSpec): Promise<McpTestClient> {
  const client = new OlderClient(clientInfo);
  const transport = new OlderStdioTransport(stdioParameters(spec));
  await client.connect(transport);
  return olderFacade(client);
}

export async function connectNewerStdio(spec: StdioServerSpec): Promise<McpTestClient> {
  const client = newerClient();
  const transport = new NewerStdioTransport(stdioParameters(spec));
  await client.connect(transport);
  return newerFacade(client);
}

/**
 * The stdio wire over in-process streams (a server given them as its stdin and stdout), for
 * wiring tests that need the server in this process (e.g. a store over a FaultyFileLayer). Both
 * SDKs' transports have this shape and frame messages as JSON lines.
 */
class StreamsTransport implements OlderTransport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: OlderMessage) => void;
  private readonly buffer = new ReadBuffer();

  constructor(private readonly toServer: Writable, private readonly fromServer: Readable) {}

  async start(): Promise<void> {
    this.fromServer.on('data', (chunk: Buffer) => {
      this.buffer.append(chunk);
      for (let message = this.buffer.readMessage(); message !== null; message = this.buffer.readMessage()) this.onmessage?.(message);
    });
    this.fromServer.on('end', () => this.onclose?.());
  }

  async send(message: OlderMessage): Promise<void> {
    this.toServer.write(serializeMessage(message));
  }

  async close(): Promise<void> {
    this.toServer.end(); // the end of the server's stdin closes the connection
  }
}

/** A client of `era` over in-process streams: `toServer` is the server's stdin, `fromServer` its stdout. */
export async function connectStreams(era: Era, toServer: Writable, fromServer: Readable): Promise<McpTestClient> {
  const transport = new StreamsTransport(toServer, fromServer);
  if (era === 'older') {
    const client = new OlderClient(clientInfo);
    await client.connect(transport);
    return olderFacade(client);
  }
  const client = newerClient();
  await client.connect(transport as unknown as Parameters<NewerClient['connect']>[0]);
  return newerFacade(client);
}

export async function connectOlderHttp(spec: HttpServerSpec): Promise<McpTestClient> {
  const client = new OlderClient(clientInfo);
  const transport = new OlderHttpTransport(new URL(spec.url), { requestInit: { headers: spec.headers ?? {} } });
  await client.connect(transport);
  return olderFacade(client);
}

export async function connectNewerHttp(spec: HttpServerSpec): Promise<McpTestClient> {
  const client = newerClient();
  const transport = new NewerHttpTransport(new URL(spec.url), { requestInit: { headers: spec.headers ?? {} } });
  await client.connect(transport);
  return newerFacade(client);
}

/** The legacy HTTP+SSE transport (GET /sse, POST /messages); older era only. */
export async function connectOlderSse(spec: HttpServerSpec): Promise<McpTestClient> {
  const client = new OlderClient(clientInfo);
  const headers = spec.headers ?? {};
  const transport = new OlderSseTransport(new URL(spec.url), {
    requestInit: { headers },
    eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }) },
  });
  await client.connect(transport);
  return olderFacade(client);
}

