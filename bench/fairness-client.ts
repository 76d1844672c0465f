/**
 * The fairness bench's MCP caller: one `tools/call object_put` as a 2026-07-28 per-request
 * envelope (what `@modelcontextprotocol/client` 2.x sends once pinned), POSTed with raw
 * `node:http` over a keep-alive agent whose socket count is the client's connection bound.
 * Raw HTTP rather than an SDK client: both load generators share the 2 cores with the server,
 * and the offered load must be defined by connections and callers, not by client CPU.
 */
import http from 'node:http';

export const protocolRevision = '2026-07-28';
/** A reply body larger than this is not an object_put answer: refuse to buffer it. */
const replyBytesMax = 64 * 1024;

export type CallOutcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'busy'; readonly retryAfterS: number }
  | { readonly kind: 'failed'; readonly status: number; readonly body: string };

export interface McpHttpCaller {
  put(id: string, text: string): Promise<CallOutcome>;
  close(): void;
}

export function mcpHttpCaller(mcpUrl: string, token: string, socketsMax: number): McpHttpCaller {
  const url = new URL(mcpUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: socketsMax, maxFreeSockets: socketsMax });
  let nextId = 0;
  const put = (id: string, text: string) =>
    new Promise<CallOutcome>((resolve, reject) => {
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: nextId++,
        method: 'tools/call',
        params: {
          name: 'object_put',
          arguments: { id, type: 'note', attributes: { text } },
          _meta: {
            'io.modelcontextprotocol/protocolVersion': protocolRevision,
            'io.modelcontextprotocol/clientInfo': { name: 'ioboxx-fairness-bench', version: '0.1.0' },
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      });
      const req = http.request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-protocol-version': protocolRevision,
            'mcp-method': 'tools/call',
            'mcp-name': 'object_put',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes <= replyBytesMax) chunks.push(chunk);
          });
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status === 429) {
              resolve({ kind: 'busy', retryAfterS: Number(res.headers['retry-after'] ?? 1) });
            } else if (status === 200 && !text.includes('"isError":true')) {
              resolve({ kind: 'ok' });
            } else {
              resolve({ kind: 'failed', status, body: text.slice(0, 500) });
            }
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return { put, close: () => agent.destroy() };
}
