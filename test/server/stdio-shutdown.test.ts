/**
 * The end of a stdio connection with calls in flight (server/mcp/stdio-transport.ts,
 * serveStdioProcess in server/main-wiring.ts): on SIGTERM the server stops reading stdin, the
 * calls it has read finish and are answered, their access rows are appended, then the store
 * closes. A call still running when the wire closes after stdin ended (the shutdown bound
 * passed) gets an error answer rather than silence, and the process then exits 1, as the HTTP
 * shutdown does past its bound.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { localTenantDefault } from '../../server/auth/local-principal.js';
import { controlPendingDirName } from '../../server/control/control-pending.js';
import { StdioTransport } from '../../server/mcp/stdio-transport.js';
import { exitCodeTimedOut } from '../../server/ops/shutdown.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';
import { hasTenantRecord } from '../../server/tenants/tenant-record-dir.js';
import { openTenantMemory } from '../../tools/index.js';
import { waitUntil } from '../support/wait-until.js';
import { cliNodeArgs } from '../support/cli-entry.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-stdio-shutdown-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

interface Answer {
  readonly id: unknown;
  readonly result?: { isError?: boolean; structuredContent?: { id?: string } };
  readonly error?: unknown;
}

/**
 * `serve --stdio` as a child process with `env` added, initialized (answers[0] is initialize's):
 * its stdout read as answers, `answered(n)` resolving once n are in.
 */
async function initializedServer(env: Record<string, string>) {
  const child = spawn(process.execPath, [...cliNodeArgs, 'serve', '--stdio'], {
    cwd: root,
    env: { ...process.env, IOBOXX_LOG_LEVEL: 'info', ...env },
  });
  onTestFinished(() => void child.kill('SIGKILL')); // a no-op once it has exited
  child.stderr.resume();
  const answers: Answer[] = [];
  let onAnswer = (): void => undefined;
  let rest = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const line of lines) answers.push(JSON.parse(line) as Answer);
    onAnswer();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const answered = (count: number) => new Promise<void>((resolve) => {
    onAnswer = () => answers.length >= count && resolve();
    onAnswer();
  });
  child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }) + '\n');
  await answered(1);
  return { child, answers, answered, exited };
}

describe('SIGTERM to the real server in stdio mode', () => {
  test('every call read before the signal is answered, and every answered call has its access row', async () => {
    const { child, answers, answered, exited } = await initializedServer({ IOBOXX_DATA_DIR: dataDir });
    child.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
    // More calls than the server reads at once: at the signal some are running (the first
    // opens the store: they all wait for that), the rest unread.
    const calls = 3000;
    let burst = '';
    for (let i = 0; i < calls; i++) burst += JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'object_put', arguments: { id: `t${i}`, type: 'burst', attributes: { i } } } }) + '\n';
    child.stdin.write(burst);
    child.stdin.on('error', () => undefined); // the server stops reading: the rest of the burst may not fit the pipe
    const answeredAtSignal = answers.length;
    child.kill('SIGTERM');
    expect(await exited).toBe(0);

    const toolAnswers = answers.slice(1);
    expect(toolAnswers.filter((a) => a.error !== undefined || a.result?.isError === true), 'error answers').toEqual([]);
    const answeredIds = toolAnswers.map((a) => a.result!.structuredContent!.id!);
    expect(answers.length, 'no call was answered after the signal: nothing was in flight').toBeGreaterThan(answeredAtSignal);

    const memory = await openTenantMemory(tenantDir(dataDir, localTenantDefault), localTenantDefault);
    try {
      const [committed, recorded] = await memory.store.read((view) => [
        [...view.table('objects').scan()].map((row) => row['id'] as string),
        [...view.table('access_log').scan()]
          .filter((row) => row['target'] === 'object_put' && row['outcome'] === 'ok')
          .flatMap((row) => row['object_ids'] as string[]),
      ]);
      // Committed and answered are the same calls: no write lost its answer, none was answered and lost.
      expect(new Set(committed)).toEqual(new Set(answeredIds));
      const audited = new Set(recorded);
      expect(answeredIds.filter((id) => !audited.has(id)), 'answered calls without an access row').toEqual([]);
    } finally {
      await memory.close();
    }
  }, 120_000);
});

describe('SIGTERM to the real server in stdio mode, a call outlasting the shutdown bound', () => {
  test(`the call is answered with an error and the process exits ${exitCodeTimedOut}, as HTTP does past its bound`, async () => {
    const boundDataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-stdio-bound-'));
    onTestFinished(() => rm(boundDataDir, { recursive: true, force: true }));
    // An empty LOCK counts as a taker between create and write: the store's open waits about
    // 1 s before clearing it, so the first call runs far past a bound of 100 ms.
    const dir = tenantDir(boundDataDir, localTenantDefault);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'LOCK'), '');
    const { child, answers, answered, exited } = await initializedServer({ IOBOXX_DATA_DIR: boundDataDir, IOBOXX_SHUTDOWN_MS: '100' });
    // The ping after the call is answered at once: once it is, the call has been read.
    child.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
      + JSON.stringify({ jsonrpc: '2.0', id: 'slow', method: 'tools/call', params: { name: 'object_put', arguments: { id: 'o', type: 't', attributes: {} } } }) + '\n'
      + '{"jsonrpc":"2.0","id":"ping","method":"ping"}\n');
    await answered(2);
    expect(answers[1]).toMatchObject({ id: 'ping' });
    child.kill('SIGTERM');
    expect(await exited).toBe(exitCodeTimedOut);
    expect(answers.slice(2)).toEqual([{ jsonrpc: '2.0', id: 'slow', error: { code: -32603, message: expect.stringContaining('shut down before this call finished') } }]);
  }, 60_000);
});

describe('the stdio wire after stdin ends', () => {
  const okResult = (text: string): CallToolResult => ({ content: [{ type: 'text', text }] });

  /** A transport over in-process pipes whose direct calls wait for `finish`; SDK-path messages are only recorded. */
  async function wire() {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const lines: JSONRPCMessage[] = [];
    stdout.setEncoding('utf8').on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean).map((l) => JSON.parse(l) as JSONRPCMessage)));
    const finishers: ((result: CallToolResult) => void)[] = [];
    let closed = false;
    const transport = new StdioTransport(stdin, stdout, {
      directToolCaller: () => () => new Promise<CallToolResult>((resolve) => finishers.push(resolve)),
      onClosed: () => (closed = true),
    });
    const toSdk: JSONRPCMessage[] = [];
    transport.onmessage = (message) => toSdk.push(message);
    await transport.start();
    stdin.write('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}\n');
    stdin.write('{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"memory://objects/x"}}\n');
    await until(() => finishers.length === 1 && toSdk.length === 1);
    stdin.end();
    await until(() => stdin.readableEnded);
    return { transport, lines, finishers, isClosed: () => closed };
  }

  async function until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise((resolve) => setImmediate(resolve));
  }

  test('the requests read before the end are answered, then the wire closes', async () => {
    const w = await wire();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(w.isClosed(), 'closed with requests unanswered').toBe(false);
    w.finishers[0]!(okResult('done'));
    await until(() => w.lines.length === 1);
    expect(w.lines[0]).toEqual({ result: okResult('done'), jsonrpc: '2.0', id: 1 });
    expect(w.isClosed()).toBe(false); // the SDK's request is still open
    await w.transport.send({ jsonrpc: '2.0', id: 2, result: { contents: [] } });
    await until(w.isClosed);
    expect(w.lines.map((l) => (l as { id: unknown }).id)).toEqual([1, 2]);
  });

  test('closed before they finish (the shutdown bound passed), each gets an error answer, not silence', async () => {
    const w = await wire();
    await w.transport.close();
    expect(w.isClosed()).toBe(true);
    expect(w.lines).toEqual([1, 2].map((id) => ({ jsonrpc: '2.0', id, error: { code: -32603, message: expect.stringContaining('shut down before this call finished') } })));
    w.finishers[0]!(okResult('late'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(w.lines).toHaveLength(2);
  });
});

describe('a stdio server with the embedded database, killed', () => {
  // The mark was written at shutdown only: after a SIGKILL the access rows waited for the tenant's next HTTP call.
  test('its tenant is marked for the next `serve --http` before any shutdown', async () => {
    const killedDataDir = path.join(dataDir, 'killed');
    const { child, answered, exited } = await initializedServer({ IOBOXX_DATA_DIR: killedDataDir });
    child.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
    child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'object_put', arguments: { type: 'note', attributes: {} } } }) + '\n');
    await answered(2);
    await waitUntil('the tenant marked while the server runs', () => hasTenantRecord(killedDataDir, controlPendingDirName, localTenantDefault));
    child.kill('SIGKILL');
    await exited;
  });
});
