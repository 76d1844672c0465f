/**
 * Lines a stdio client should not send still get a JSON-RPC 2.0 answer, so the client never
 * waits on one (server/mcp/stdio-transport.ts): -32700 for a line that is not JSON, -32600 for
 * a message the SDK refuses (with its id when one can be read) and for a line over
 * stdioLineBytesMax, which is skipped to its newline; the connection goes on after each, and
 * stdout carries JSON-RPC messages only. A line is read whole wherever the chunks it comes in
 * are cut, and one past the bound is refused before its newline arrives. Served by the real serveMemoryStdio over in-process pipes.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import pino from 'pino';
import { createLogger, type Logger } from '../../server/log.js';
import { stdioLineBytesMax } from '../../server/mcp/stdio-transport.js';
import type { McpRequestEvent, McpSurface } from '../../server/mcp/surface.js';
import { serveMemoryStdio, type StdioServing } from '../../server/stdio.js';
import { createNotesMemory, notesCatalog, notesTools, type NotesMemory } from './fixtures/notes.js';
import { JsonLines } from './fixtures/json-lines.js';

interface Answer {
  readonly jsonrpc: string;
  readonly id?: unknown;
  readonly result?: unknown;
  readonly error?: { code: number; message: string };
}

/** The server's stdout as parsed lines; each line must be a JSON-RPC 2.0 message. */
class Answers extends JsonLines<Answer> {
  constructor(stdout: PassThrough) {
    super(stdout, (answer, line) => expect(answer.jsonrpc, line).toBe('2.0'));
  }
}

let serving: StdioServing | undefined;
afterEach(async () => {
  await serving?.close();
  serving = undefined;
});

/** An initialized 2025-era connection; `answers.all` then holds initialize's answer only. */
async function connection(onRequest?: McpSurface['onRequest'], log: Logger = createLogger('silent')): Promise<{ stdin: PassThrough; answers: Answers; memory: NotesMemory }> {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const answers = new Answers(stdout);
  const memory = createNotesMemory();
  serving = serveMemoryStdio({
    surface: { tools: notesTools, catalog: notesCatalog, log, ...(onRequest !== undefined && { onRequest }) },
    principal: localPrincipal(),
    memory,
    stdin,
    stdout,
  });
  stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }) + '\n');
  expect(await answers.at(0)).toHaveProperty('result.protocolVersion', '2025-11-25');
  stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
  return { stdin, answers, memory };
}

/** Sends `line` and gives back the one answer it gets. */
async function answerTo(stdin: PassThrough, answers: Answers, line: string | Buffer): Promise<Answer> {
  const index = answers.all.length;
  stdin.write(line);
  return answers.at(index);
}

/** The connection still serves: a ping and a direct tools/call are answered. */
async function stillServes(stdin: PassThrough, answers: Answers): Promise<void> {
  expect(await answerTo(stdin, answers, '{"jsonrpc":"2.0","id":"ping","method":"ping"}\n')).toEqual({ jsonrpc: '2.0', id: 'ping', result: {} });
  const put = await answerTo(stdin, answers, JSON.stringify({ jsonrpc: '2.0', id: 'put', method: 'tools/call', params: { name: 'note_put', arguments: { id: 'n', text: 't' } } }) + '\n');
  expect(put).toMatchObject({ id: 'put', result: { structuredContent: { id: 'n' } } });
}

const invalidRequest = -32600;
const parseError = -32700;

describe('stdio lines that are not messages the server accepts', () => {
  test('a line that is not JSON is answered -32700 with id null; a blank line is not answered', async () => {
    const { stdin, answers } = await connection();
    for (const line of ['hello world', '{', '{"jsonrpc":"2.0","id":4,', '\u0000\u0001']) {
      expect(await answerTo(stdin, answers, line + '\n'), line).toEqual({ jsonrpc: '2.0', id: null, error: { code: parseError, message: expect.any(String) } });
    }
    stdin.write('   \n\r\n');
    await stillServes(stdin, answers);
    expect(answers.all).toHaveLength(1 + 4 + 2);
  });

  test('an invalid message is answered -32600 with its id when it has a readable one, id null otherwise', async () => {
    const { stdin, answers } = await connection();
    const cases: [string, unknown][] = [
      ['{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"note_get","arguments":{"id":"x"}},"extra":1}', 8],
      ['{"jsonrpc":"2.0","id":3,"method":5}', 3],
      ['{"jsonrpc":"2.0","id":2}', 2],
      ['{"jsonrpc":"1.0","id":"s","method":"ping"}', 's'],
      ['{"jsonrpc":"2.0","id":null,"method":"ping"}', null],
      ['{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', null],
      ['{"jsonrpc":"2.0"}', null],
      ['[]', null],
      ['[{"jsonrpc":"2.0","id":1,"method":"ping"}]', null],
      ['42', null],
      ['null', null],
      ['"text"', null],
    ];
    for (const [line, id] of cases) {
      expect(await answerTo(stdin, answers, line + '\n'), line).toEqual({ jsonrpc: '2.0', id, error: { code: invalidRequest, message: expect.any(String) } });
    }
    await stillServes(stdin, answers);
  });

  test(`a line over stdioLineBytesMax (${stdioLineBytesMax} bytes) is answered -32600, skipped to its newline, and the connection goes on`, async () => {
    const { stdin, answers } = await connection();
    const refusal = { jsonrpc: '2.0', id: null, error: { code: invalidRequest, message: `message exceeds ${stdioLineBytesMax} bytes (stdioLineBytesMax)` } };
    const head = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"note_put","arguments":{"id":"big","text":"';
    const tail = '"}}}\n';
    const text = 'L'.repeat(stdioLineBytesMax + 1024);

    // Whole, in one chunk.
    expect(await answerTo(stdin, answers, head + text + tail)).toEqual(refusal);
    await stillServes(stdin, answers);

    // In pieces as a pipe delivers it, the next message in the chunk that ends it: answered
    // once, when the partial line passes the bound; the rest of it is dropped.
    const index = answers.all.length;
    const piece = 1024 * 1024;
    stdin.write(head);
    for (let at = 0; at < text.length; at += piece) stdin.write(text.slice(at, at + piece));
    stdin.write(tail + '{"jsonrpc":"2.0","id":"after","method":"ping"}\n');
    expect(await answers.at(index)).toEqual(refusal);
    expect(await answers.at(index + 1)).toEqual({ jsonrpc: '2.0', id: 'after', result: {} });
    await stillServes(stdin, answers);
    expect(answers.all.some((a) => a.id === 3)).toBe(false);
  });

  test('each refused line is reported for the audit (method `stdio`), as the requests the server answers are', async () => {
    const events: McpRequestEvent[] = [];
    const { stdin, answers } = await connection((event) => events.push(event));
    await answerTo(stdin, answers, 'hello world\n');
    await answerTo(stdin, answers, '{"jsonrpc":"2.0"}\n');
    await answerTo(stdin, answers, `{"x":"${'L'.repeat(stdioLineBytesMax)}"}\n`);
    await answerTo(stdin, answers, '{"jsonrpc":"2.0","id":"p","method":"ping"}\n');
    await new Promise((resolve) => setImmediate(resolve)); // reports run after the answer
    expect(events.map((e) => [e.method, e.outcome])).toEqual([
      ['initialize', 'ok'],
      ['stdio', 'parse_error'],
      ['stdio', 'invalid_request'],
      ['stdio', 'limit_exceeded'],
      ['ping', 'ok'],
    ]);
  });

  test('each refused line is logged as one line naming what was refused, with no stack', async () => {
    const logged: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
    const { stdin, answers } = await connection(undefined, log);
    await answerTo(stdin, answers, 'hello world\n');
    await answerTo(stdin, answers, '{"jsonrpc":"2.0","id":7,"method":5}\n');
    await answerTo(stdin, answers, '{"jsonrpc":"2.0"}\n');
    await answerTo(stdin, answers, `{"x":"${'L'.repeat(stdioLineBytesMax)}"}\n`);
    await stillServes(stdin, answers);
    expect(logged.every((line) => line.endsWith('\n') && !line.slice(0, -1).includes('\n') && !line.includes('    at ')), logged.join('')).toBe(true);
    const records = logged.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.map((r) => [r['msg'], r['outcome'], r['reason'], r['err']])).toEqual([
      ['stdio line refused', 'parse_error', 'Parse error: the line is not valid JSON (11 bytes)', undefined],
      ['stdio line refused', 'invalid_request', expect.stringMatching(/^Invalid Request: .* \(id 7, no method\)$/), undefined],
      ['stdio line refused', 'invalid_request', expect.stringMatching(/^Invalid Request: .* \(no readable id, no method\)$/), undefined],
      ['stdio line refused', 'limit_exceeded', `message exceeds ${stdioLineBytesMax} bytes (stdioLineBytesMax)`, undefined],
    ]);
  });

  test('a line of exactly stdioLineBytesMax bytes is still read', async () => {
    const { stdin, answers } = await connection();
    const ping = '{"jsonrpc":"2.0","id":"edge","method":"ping"}';
    const line = ping + ' '.repeat(stdioLineBytesMax - ping.length);
    expect(await answerTo(stdin, answers, line + '\r\n')).toEqual({ jsonrpc: '2.0', id: 'edge', result: {} });
  });
});

describe('stdio lines split across chunks', () => {
  const putLine = JSON.stringify({ jsonrpc: '2.0', id: 'put', method: 'tools/call', params: { name: 'note_put', arguments: { id: 'u', text: 'é漢😀' } } });
  const stream = Buffer.from('{"jsonrpc":"2.0","id":"a","method":"ping"}\n' + putLine + '\r\n' + '{"jsonrpc":"2.0","id":"c","method":"ping"}\n');

  /** Writes `stream` as `chunks`, then checks its three answers and the text the put stored. */
  async function expectStreamRead(connected: Awaited<ReturnType<typeof connection>>, chunks: Buffer[], split: string): Promise<void> {
    const { stdin, answers, memory } = connected;
    memory.notes.notes.delete('u');
    const index = answers.all.length;
    for (const chunk of chunks) stdin.write(chunk);
    await answers.at(index + 2);
    const byId = new Map(answers.all.slice(index).map((answer) => [answer.id, answer]));
    expect(byId.get('a'), split).toEqual({ jsonrpc: '2.0', id: 'a', result: {} });
    expect(byId.get('put'), split).toMatchObject({ result: { structuredContent: { id: 'u' } } });
    expect(byId.get('c'), split).toEqual({ jsonrpc: '2.0', id: 'c', result: {} });
    expect(memory.notes.notes.get('u')?.text, split).toBe('é漢😀');
  }

  test('lines split at any byte, inside a multi-byte character or between "\\r" and "\\n" too, are read whole', async () => {
    const connected = await connection();
    for (let at = 1; at < stream.length; at++) await expectStreamRead(connected, [stream.subarray(0, at), stream.subarray(at)], `split at byte ${at}`);
    await expectStreamRead(connected, [...stream].map((byte) => Buffer.from([byte])), 'one byte per chunk');
    await stillServes(connected.stdin, connected.answers);
  });

  test('many lines in one chunk are each answered', async () => {
    const { stdin, answers } = await connection();
    const count = 500;
    const index = answers.all.length;
    stdin.write(Array.from({ length: count }, (_, i) => `{"jsonrpc":"2.0","id":${i},"method":"ping"}\n`).join(''));
    await answers.at(index + count - 1);
    expect(answers.all.slice(index).map((answer) => answer.id)).toEqual(Array.from({ length: count }, (_, i) => i));
  });

  test('a line of exactly stdioLineBytesMax bytes is still read when its "\\r\\n" is split between chunks', async () => {
    const { stdin, answers } = await connection();
    const ping = '{"jsonrpc":"2.0","id":"edge","method":"ping"}';
    const line = ping + ' '.repeat(stdioLineBytesMax - ping.length);
    const index = answers.all.length;
    stdin.write(line.slice(0, 1024));
    stdin.write(line.slice(1024) + '\r');
    stdin.write('\n');
    expect(await answers.at(index)).toEqual({ jsonrpc: '2.0', id: 'edge', result: {} });
  });

  test('a line is refused as soon as it passes stdioLineBytesMax, before its newline arrives; the line after it is served', async () => {
    const { stdin, answers } = await connection();
    const index = answers.all.length;
    const piece = 'x'.repeat(1024 * 1024);
    let written = 0;
    while (written <= stdioLineBytesMax + 1) {
      stdin.write(piece);
      written += piece.length;
    }
    expect(await answers.at(index)).toEqual({ jsonrpc: '2.0', id: null, error: { code: invalidRequest, message: `message exceeds ${stdioLineBytesMax} bytes (stdioLineBytesMax)` } });
    stdin.write(piece + '\n{"jsonrpc":"2.0","id":"next","method":"ping"}\n');
    expect(await answers.at(index + 1)).toEqual({ jsonrpc: '2.0', id: 'next', result: {} });
    await stillServes(stdin, answers);
    expect(answers.all).toHaveLength(index + 1 + 1 + 2);
  });
});
