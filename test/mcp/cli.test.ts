/**
 * The real command line, wired to the real memory module. `serve --stdio`: stdout carries only
 * MCP messages (each line one JSON-RPC message), logs are JSON lines on stderr, an
 * acknowledged write survives SIGKILL. `serve --http`: listens where configured, serves both
 * eras, stops cleanly on SIGTERM. Configuration errors are reported together.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectNewerHttp, connectOlderSse } from '../support/mcp-clients.js';
import { cliNodeArgs } from '../support/cli-entry.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-cli-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

function cli(args: readonly string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [...cliNodeArgs, ...args], {
    cwd: root,
    env: { ...process.env, IOBOXX_DATA_DIR: dataDir, IOBOXX_LOG_LEVEL: 'info', ...env },
  });
}

async function finished(child: ChildProcessWithoutNullStreams): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

/** A raw JSON-RPC session over a child's stdio: send a request, wait for the answer with its id. */
class RawSession {
  readonly stdoutLines: string[] = [];
  private readonly waiting = new Map<number, (message: Record<string, unknown>) => void>();
  private nextId = 1;

  constructor(readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      this.stdoutLines.push(line);
      const message = JSON.parse(line) as Record<string, unknown>;
      const id = message['id'];
      if (typeof id === 'number') this.waiting.get(id)?.(message);
    });
  }

  request(method: string, params: unknown): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const answered = new Promise<Record<string, unknown>>((resolve) => this.waiting.set(id, resolve));
    this.child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    return answered;
  }

  notify(method: string): void {
    this.child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method })}\n`);
  }

  async open(): Promise<void> {
    await this.request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } });
    this.notify('notifications/initialized');
  }
}

describe('ioboxx-memory serve --stdio', () => {
  test('stdout carries only JSON-RPC; an acknowledged write survives SIGKILL', async () => {
    const first = new RawSession(cli(['serve', '--stdio']));
    let stderr = '';
    first.child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await first.open();
    const put = await first.request('tools/call', { name: 'object_put', arguments: { type: 'note', attributes: { text: 'kept' } } });
    const written = (put['result'] as { structuredContent: { id: string; offset: number } }).structuredContent;
    expect(written.offset).toBeGreaterThanOrEqual(0);
    const killed = new Promise((resolve) => first.child.on('close', resolve));
    first.child.kill('SIGKILL');
    await killed;

    for (const line of first.stdoutLines) expect(JSON.parse(line)).toMatchObject({ jsonrpc: '2.0' });
    const logLines = stderr.split('\n').filter((l) => l.trim() !== '');
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of logLines) expect(JSON.parse(line)).toHaveProperty('level');

    const second = new RawSession(cli(['serve', '--stdio']));
    await second.open();
    const got = await second.request('tools/call', { name: 'object_get', arguments: { id: written.id } });
    expect((got['result'] as { structuredContent: unknown }).structuredContent).toMatchObject({ id: written.id, attributes: { text: 'kept' } });
    second.child.stdin.end(); // the client goes away: the server closes the store and exits
    expect((await finished(second.child)).code).toBe(0);
  });
});

describe('ioboxx-memory serve --http', () => {
  test('listens on IOBOXX_HTTP_PORT, serves the memory to both eras, stops on SIGTERM', async () => {
    const child = cli(['serve', '--http'], { IOBOXX_HTTP_PORT: '0' });
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stderr }).on('line', (line) => {
        const event = JSON.parse(line) as { msg?: string; url?: string };
        if (event.msg === 'http server listening' && event.url !== undefined) resolve(event.url);
      });
      child.on('close', (code) => reject(new Error(`server exited (${code}) before listening`)));
    });
    expect(new URL(url).hostname).toBe('127.0.0.1');
    const newer = await connectNewerHttp({ url: `${url}/mcp` });
    const put = await newer.callTool('object_put', { type: 'note', attributes: { text: 'over http' } });
    const id = (put.structuredContent as { id: string }).id;
    await newer.close();
    const older = await connectOlderSse({ url: `${url}/sse` });
    expect((await older.callTool('object_get', { id })).structuredContent).toMatchObject({ id, attributes: { text: 'over http' } });
    await older.close();
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

describe.concurrent('ioboxx-memory command line', () => {
  test.each([[[]], [['serve']]])('%j --help', async (args) => {
    const { code, stdout } = await finished(cli([...args, '--help']));
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: ioboxx-memory');
  });

  test('serve without a transport says which to choose', async () => {
    const { code, stderr } = await finished(cli(['serve']));
    expect(code).not.toBe(0);
    expect(stderr).toContain('--stdio or --http');
  });

  test('every bad setting is reported at once, and nothing is served', async () => {
    const { code, stderr, stdout } = await finished(cli(['serve', '--stdio'], { IOBOXX_HTTP_PORT: 'eighty', IOBOXX_LOG_LEVEL: 'loud' }));
    expect(code).toBe(2);
    expect(stderr).toContain('IOBOXX_HTTP_PORT');
    expect(stderr).toContain('IOBOXX_LOG_LEVEL');
    expect(stdout).toBe('');
  });
});

test('mcp.json launches the stdio server through the bin shim with a data directory', async () => {
  const config = JSON.parse(await readFile(path.join(root, 'mcp.json'), 'utf8')) as {
    mcpServers: Record<string, { command: string; args: string[]; env?: Record<string, string> }>;
  };
  const server = config.mcpServers['ioboxx-memory'];
  expect(server?.command).toBe('node');
  expect(server?.args).toEqual(['bin/ioboxx-memory.js', 'serve', '--stdio']);
  expect(server?.env?.['IOBOXX_DATA_DIR']).toBeTruthy();
  const shim = await readFile(path.join(root, server!.args[0]!), 'utf8');
  expect(shim).toContain('dist/server/cli/main.js');
});
