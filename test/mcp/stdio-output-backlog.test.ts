/**
 * A stdio client that writes requests and stops reading their answers: the server stops reading
 * stdin once stdout holds more than its backlog bound unwritten, instead of keeping every answer
 * in memory; once the client reads again, every request is answered.
 * Served by the real serveMemoryStdio, its stdout a stream the test lets drain or not.
 */
import { PassThrough, Writable } from 'node:stream';
import { afterEach, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { createLogger } from '../../server/log.js';
import { serveMemoryStdio, type StdioServing } from '../../server/stdio.js';
import { waitUntil } from '../support/wait-until.js';
import { createNotesMemory, notesCatalog, notesTools } from './fixtures/notes.js';

const backlogBytesMax = 64 * 1024;

/** A client's end of stdout that takes nothing while `stalled`; it counts answer bytes and keeps the worst backlog seen. */
class StallingStdout extends Writable {
  stalled = true;
  backlogBytesWorst = 0;
  text = '';
  private waiting: Array<() => void> = [];

  constructor() {
    super({ highWaterMark: 16 * 1024 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.backlogBytesWorst = Math.max(this.backlogBytesWorst, this.writableLength);
    const take = () => {
      this.text += chunk.toString('utf8');
      done();
    };
    if (this.stalled) this.waiting.push(take);
    else take();
  }

  lines(): unknown[] {
    return this.text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as unknown);
  }

  readAgain(): void {
    this.stalled = false;
    const waiting = this.waiting;
    this.waiting = [];
    for (const take of waiting) take();
  }
}

let serving: StdioServing | undefined;
afterEach(async () => {
  await serving?.close();
  serving = undefined;
});

test('a client that stops reading stdout: stdin is read no further past the backlog bound, and every request is answered once it reads again', async () => {
  const stdin = new PassThrough();
  const stdout = new StallingStdout();
  serving = serveMemoryStdio({
    surface: { tools: notesTools, catalog: notesCatalog, log: createLogger('silent') },
    principal: localPrincipal(),
    memory: createNotesMemory(),
    stdin,
    stdout,
    outputBacklogBytesMax: backlogBytesMax,
  });
  let paused = false;
  stdin.on('pause', () => (paused = true));

  // tools/list answers are about 2 KB each: 400 of them are far past the bound.
  const requests = 400;
  stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }) + '\n');
  stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
  for (let id = 1; id <= requests; id++) {
    stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }) + '\n');
    await new Promise((resolve) => setImmediate(resolve)); // one line per chunk, as a client writing calls one by one
  }
  // Fixed: stdin paused with lines left unread. Before: all 401 answers held in stdout's buffer.
  let queuedBytes = 0;
  await waitUntil('stdin paused, or every answer queued', async () => {
    queuedBytes = stdout.writableLength;
    return paused || stdout.writableLength > requests * 1024;
  });
  expect(paused, `stdin never paused; stdout held ${queuedBytes} bytes of answers unread`).toBe(true);
  expect(stdin.readableLength, 'requests left unread in stdin').toBeGreaterThan(0);
  // What was read before the pause is still answered: a few answers over the bound, not all of them.
  expect(stdout.writableLength).toBeLessThan(backlogBytesMax * 2);

  stdout.readAgain();
  await waitUntil('every request answered', async () => stdout.writableLength === 0 && stdout.lines().length === requests + 1);
  const ids = stdout.lines().map((answer) => (answer as { id: number }).id).sort((a, b) => a - b);
  expect(ids).toEqual(Array.from({ length: requests + 1 }, (_, id) => id));
  expect(stdout.backlogBytesWorst).toBeLessThan(backlogBytesMax * 2);
  expect(stdout.lines().every((answer) => (answer as { result?: { tools?: unknown } }).result?.tools !== undefined || (answer as { id: number }).id === 0)).toBe(true);
});
