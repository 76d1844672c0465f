/**
 * JSON-RPC batches over stdio (server/mcp/stdio-transport.ts). MCP 2025-03-26 says
 * implementations MUST support receiving batches; 2025-06-18 removed them. A connection that
 * negotiated 2025-03-26 serves a batch's messages (the direct tools/call path included) and
 * answers its requests with one array on one line, as a 2025-03-26 HTTP session does; a later
 * revision's connection refuses a batch -32600. Served by the real serveMemoryStdio over
 * in-process pipes.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { createLogger } from '../../server/log.js';
import { serveMemoryStdio, type StdioServing } from '../../server/stdio.js';
import { createNotesMemory, notesCatalog, notesTools } from './fixtures/notes.js';
import { JsonLines } from './fixtures/json-lines.js';


let serving: StdioServing | undefined;
afterEach(async () => {
  await serving?.close();
  serving = undefined;
});

async function connection(protocolVersion: string): Promise<{ stdin: PassThrough; lines: JsonLines }> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const lines = new JsonLines(stdout);
  serving = serveMemoryStdio({
    surface: { tools: notesTools, catalog: notesCatalog, log: createLogger('silent') },
    principal: localPrincipal(),
    memory: createNotesMemory(),
    stdin,
    stdout,
  });
  stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }) + '\n');
  expect(await lines.at(0)).toHaveProperty('result.protocolVersion', protocolVersion);
  stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
  return { stdin, lines };
}

async function answerTo(stdin: PassThrough, lines: JsonLines, message: unknown): Promise<unknown> {
  const index = lines.all.length;
  stdin.write(JSON.stringify(message) + '\n');
  return lines.at(index);
}

const ping = (id: string | number) => ({ jsonrpc: '2.0', id, method: 'ping' });

describe('JSON-RPC batches over stdio', () => {
  test('2025-03-26: a batch is served and answered with one array, in the batch order, notifications unanswered', async () => {
    const { stdin, lines } = await connection('2025-03-26');
    const answer = await answerTo(stdin, lines, [
      ping(1),
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'note_put', arguments: { id: 'n', text: 't' } } },
      { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
      { jsonrpc: '2.0', id: 'x', method: 'no/such/method' },
    ]);
    expect(answer).toEqual([
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', id: 2, result: expect.objectContaining({ structuredContent: expect.objectContaining({ id: 'n' }) }) },
      { jsonrpc: '2.0', id: 'x', error: { code: -32601, message: expect.any(String) } },
    ]);
    // A batch of one request is still answered with an array; the connection goes on.
    expect(await answerTo(stdin, lines, [ping(3)])).toEqual([{ jsonrpc: '2.0', id: 3, result: {} }]);
    expect(await answerTo(stdin, lines, ping(4))).toEqual({ jsonrpc: '2.0', id: 4, result: {} });
  });

  test('2025-03-26: a batch with a message the SDK refuses, or two requests of one id, is refused whole', async () => {
    const { stdin, lines } = await connection('2025-03-26');
    expect(await answerTo(stdin, lines, [ping(1), { foo: 1 }])).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } });
    expect(await answerTo(stdin, lines, [ping(2), ping(2)])).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } });
    expect(await answerTo(stdin, lines, ping(5))).toEqual({ jsonrpc: '2.0', id: 5, result: {} });
  });

  test('2025-06-18 and later: a batch is refused -32600', async () => {
    const { stdin, lines } = await connection('2025-11-25');
    expect(await answerTo(stdin, lines, [ping(1), ping(2)])).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } });
    expect(await answerTo(stdin, lines, ping(3))).toEqual({ jsonrpc: '2.0', id: 3, result: {} });
  });
});
