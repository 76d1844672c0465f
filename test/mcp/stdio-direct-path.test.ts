/**
 * The direct tools/call path of the stdio wire (server/mcp/stdio-transport.ts): a well-formed
 * tools/call on an initialized 2025-era connection is served by our tool caller without the
 * SDK's message schemas. Its answer must be byte for byte the SDK's answer; every other line
 * must still reach the SDK; a cancelled or closed call is not answered; framing is the SDK's.
 * (Both eras' real SDK clients over a spawned stdio process: test/mcp/stdio.test.ts.)
 */
import { PassThrough } from 'node:stream';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/server';
import { describe, expect, test } from 'vitest';
import { createLogger } from '../../server/log.js';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { serveMemoryStdio, type StdioServing } from '../../server/stdio.js';
import type { McpSurface } from '../../server/mcp/surface.js';
import { directRequestOf, directToolCallOf } from '../../server/mcp/direct-request.js';
import { StdioTransport, stdioLineBytesMax } from '../../server/mcp/stdio-transport.js';
import type { ToolCaller } from '../../server/mcp/tool-calls.js';
import { createNotesMemory, notesCatalog, notesTools } from './fixtures/notes.js';

/** The lines a stream carries, each awaited by a predicate (no sleeps: wait for the line). */
class LineReader {
  readonly lines: string[] = [];
  private waiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  private rest = '';

  constructor(stream: PassThrough) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (this.rest + chunk).split('\n');
      this.rest = parts.pop()!;
      for (const line of parts) {
        this.lines.push(line);
        const waiter = this.waiters.find((w) => w.match(line));
        if (waiter !== undefined) {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          waiter.resolve(line);
        }
      }
    });
  }

  next(match: (line: string) => boolean): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  answerTo(id: number): Promise<string> {
    return this.next((line) => (JSON.parse(line) as { id?: unknown }).id === id);
  }
}

function send(stdin: PassThrough, message: unknown): void {
  stdin.write(JSON.stringify(message) + '\n');
}

/** The answer line without its id (the only part two answers to the same call may differ in). */
function withoutId(line: string): string {
  return line.replace(/,"id":\d+\}$/, '}');
}

/** The notes surface served by the real serveMemoryStdio over in-process pipes, initialized as a 2025-era client does. */
async function initializedServing(surface: Partial<McpSurface> = {}): Promise<{ stdin: PassThrough; out: LineReader; serving: StdioServing }> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const out = new LineReader(stdout);
  const serving = serveMemoryStdio({
    surface: { tools: notesTools, catalog: notesCatalog, log: createLogger('fatal'), ...surface },
    principal: localPrincipal(),
    memory: createNotesMemory(),
    stdin,
    stdout,
  });
  send(stdin, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
  expect(JSON.parse(await out.answerTo(1))).toHaveProperty('result.protocolVersion', '2025-11-25');
  send(stdin, { jsonrpc: '2.0', method: 'notifications/initialized' });
  return { stdin, out, serving };
}

describe('stdio direct tools/call path, served by the real server over in-process pipes', () => {
  test('a direct answer is byte for byte the answer the SDK path gives to the same call', async () => {
    const { stdin, out, serving } = await initializedServing();
    try {
      send(stdin, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'note_put', arguments: { id: 'a', text: 'hello' } } });
      expect(JSON.parse(await out.answerTo(2))).toMatchObject({ result: { structuredContent: { id: 'a', version: 1 } } });

      // Each call twice: as it comes (direct), and with an empty `_meta`, which the direct path
      // leaves to the SDK (it changes nothing for the tool).
      const calls: { name: string; arguments?: Record<string, unknown> }[] = [
        { name: 'note_get', arguments: { id: 'a' } },
        { name: 'note_get', arguments: { id: 'missing' } },
        { name: 'note_get', arguments: { id: 5 } },
        { name: 'note_get' },
        { name: 'no_such_tool', arguments: {} },
        { name: 'note_dump', arguments: {} },
        { name: 'note_crash', arguments: {} },
      ];
      let id = 100;
      for (const params of calls) {
        const directId = id++;
        const sdkId = id++;
        send(stdin, { jsonrpc: '2.0', id: directId, method: 'tools/call', params });
        send(stdin, { jsonrpc: '2.0', id: sdkId, method: 'tools/call', params: { ...params, _meta: {} } });
        const [direct, sdk] = await Promise.all([out.answerTo(directId), out.answerTo(sdkId)]);
        expect(withoutId(direct), JSON.stringify(params)).toBe(withoutId(sdk));
        expect(direct.endsWith(`"jsonrpc":"2.0","id":${directId}}`)).toBe(true);
      }
    } finally {
      await serving.close();
    }
  });
});

describe('the beforeWriteCall hook (lets queued access rows share a write call\'s commit batch)', () => {
  test('runs for a write tool that passed its checks, never for reads or refused calls', async () => {
    const hooked: string[] = [];
    const { stdin, out, serving } = await initializedServing({ beforeWriteCall: (p) => hooked.push(p.caller.subject) });
    try {
      const calls = [
        { name: 'note_get', arguments: { id: 'a' } },
        { name: 'note_put', arguments: { id: 5 } },
        { name: 'no_such_tool', arguments: {} },
        { name: 'note_put', arguments: { id: 'a', text: 'x' } },
      ];
      for (const [i, params] of calls.entries()) send(stdin, { jsonrpc: '2.0', id: 10 + i, method: 'tools/call', params });
      await Promise.all(calls.map((_, i) => out.answerTo(10 + i)));
      expect(hooked).toEqual([localPrincipal().caller.subject]);
    } finally {
      await serving.close();
    }
  });
});

describe('stdio transport routing', () => {
  interface Harness {
    readonly stdin: PassThrough;
    readonly out: LineReader;
    readonly transport: StdioTransport;
    readonly calls: { name: string; args: unknown }[];
    readonly messages: JSONRPCMessage[];
    readonly errors: Error[];
    readonly refused: string[];
    nextMessage(): Promise<JSONRPCMessage>;
  }

  const okResult = (text: string): CallToolResult => ({ content: [{ type: 'text', text }] });

  async function harness(caller: ToolCaller | undefined): Promise<Harness> {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const calls: { name: string; args: unknown }[] = [];
    const messages: JSONRPCMessage[] = [];
    const errors: Error[] = [];
    let waiting: ((message: JSONRPCMessage) => void) | undefined;
    const recording: ToolCaller | undefined =
      caller === undefined ? undefined : (name, args) => (calls.push({ name, args }), caller(name, args));
    const refused: string[] = [];
    const transport = new StdioTransport(stdin, stdout, { directToolCaller: () => recording, onClosed: () => undefined, onLineRefused: (outcome) => void refused.push(outcome) });
    transport.onmessage = (message) => {
      messages.push(message);
      waiting?.(message);
    };
    transport.onerror = (error) => errors.push(error);
    await transport.start();
    return {
      stdin, out: new LineReader(stdout), transport, calls, messages, errors, refused,
      nextMessage: () => new Promise((resolve) => (waiting = resolve)),
    };
  }

  test('a plain tools/call goes to the direct caller, and its answer is one JSON-RPC line', async () => {
    const h = await harness(async (name) => okResult(`called ${name}`));
    send(h.stdin, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 't', arguments: { x: 1 } } });
    expect(await h.out.answerTo(7)).toBe(JSON.stringify({ result: okResult('called t'), jsonrpc: '2.0', id: 7 }));
    expect(h.calls).toEqual([{ name: 't', args: { x: 1 } }]);
    expect(h.messages).toEqual([]);
  });

  test('every other message reaches the SDK unchanged', async () => {
    const h = await harness(async () => okResult('direct'));
    const toSdk: unknown[] = [
      { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '0' } } },
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 't', _meta: { progressToken: 1 } } },
      { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 't', task: { ttl: 1000 } } },
      { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 't', arguments: [1, 2] } },
      { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 7 } },
      { jsonrpc: '2.0', id: 8, method: 'tools/call' },
      { jsonrpc: '2.0', id: 9, result: {} },
    ];
    for (const message of toSdk) {
      const reached = h.nextMessage();
      send(h.stdin, message);
      expect(await reached).toEqual(message);
    }
    expect(h.calls).toEqual([]);
  });

  test('with no direct caller yet (server not initialized), a tools/call reaches the SDK', async () => {
    const h = await harness(undefined);
    const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 't', arguments: {} } };
    const reached = h.nextMessage();
    send(h.stdin, call);
    expect(await reached).toEqual(call);
  });

  test('framing is the SDK\'s: split chunks, several lines per chunk, CRLF, a line that is not JSON in between (stdio-bad-lines.test.ts: its answer)', async () => {
    const h = await harness(async (name) => okResult(name));
    const line = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: `t${id}` } });
    const first = line(1);
    h.stdin.write(first.slice(0, 10));
    h.stdin.write(first.slice(10) + '\r\nnot json\n' + line(2) + '\n' + line(3).slice(0, 5));
    h.stdin.write(line(3).slice(5) + '\n');
    await Promise.all([h.out.answerTo(1), h.out.answerTo(2), h.out.answerTo(3)]);
    expect(h.calls.map((c) => c.name)).toEqual(['t1', 't2', 't3']);
    expect(h.errors).toEqual([]);
  });

  test('a message the SDK schema refuses is reported as a refused line (not a connection error), and reading goes on', async () => {
    const h = await harness(async () => okResult('ok'));
    h.stdin.write('{"jsonrpc":"1.0","id":1,"method":"x"}\n');
    send(h.stdin, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 't' } });
    await h.out.answerTo(2);
    expect(h.refused).toEqual(['invalid_request']);
    expect(h.errors).toEqual([]);
  });

  test('a cancelled direct call is not answered; the calls after it are', async () => {
    let finish!: (result: CallToolResult) => void;
    const h = await harness((name) => (name === 'slow' ? new Promise((resolve) => (finish = resolve)) : Promise.resolve(okResult(name))));
    send(h.stdin, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'slow' } });
    const cancelled = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, reason: 'user' } };
    const reached = h.nextMessage();
    send(h.stdin, cancelled);
    expect(await reached).toEqual(cancelled); // the SDK sees the notification too
    finish(okResult('late'));
    send(h.stdin, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'fast' } });
    await h.out.answerTo(2);
    expect(h.out.lines.map((l) => (JSON.parse(l) as { id: number }).id)).toEqual([2]);
  });

  test('a direct call in flight when the wire closes is not answered', async () => {
    let finish!: (result: CallToolResult) => void;
    const h = await harness(() => new Promise((resolve) => (finish = resolve)));
    send(h.stdin, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'slow' } });
    await new Promise<void>((resolve) => {
      const check = () => (h.calls.length > 0 ? resolve() : setImmediate(check));
      check();
    });
    await h.transport.close();
    finish(okResult('late'));
    await new Promise((resolve) => setImmediate(resolve)); // the answer's promise chain has run
    expect(h.out.lines).toEqual([]);
    expect(h.errors).toEqual([]);
  });
});

describe('which requests skip the SDK schemas', () => {
  test('a tools/call is direct only with a string name and, at most, object arguments', () => {
    const call = (params: unknown) => directRequestOf({ jsonrpc: '2.0', id: 1, method: 'tools/call', params });
    expect(directToolCallOf(call({ name: 'x', arguments: { a: 1 } })!)).toEqual({ name: 'x', args: { a: 1 } });
    expect(directToolCallOf(call({ name: 'x' })!)).toEqual({ name: 'x', args: undefined });
    for (const params of [{ name: 1 }, { name: 'x', arguments: null }, { name: 'x', arguments: [] }, { name: 'x', task: {} }, { name: 'x', extra: 1 }, []]) {
      const request = call(params);
      expect(request === undefined || directToolCallOf(request) === undefined, JSON.stringify(params)).toBe(true);
    }
    expect(directToolCallOf(directRequestOf({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { name: 'x' } })!)).toBeUndefined();
  });
});
