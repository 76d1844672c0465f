/**
 * `npm start` is README's way to run the server, and a supervisor that started it that way
 * (a container's init, a process manager, `kill` by the pid it knows) stops it by signalling npm.
 * npm hands the signal to the shell running the script; the server must get it too, drain and
 * exit, not live on as an orphan that keeps the port and its stores' LOCKs. So the script execs
 * the server; then a Ctrl-C at the terminal reaches it twice (from the terminal and from npm), and
 * must still be one graceful shutdown (server/ops/shutdown.ts, signalEchoMs).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { waitUntil } from '../support/wait-until.js';
import { root } from './cli-process.js';
import { childExit } from '../support/child-exit.js';

function startEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, IOBOXX_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'ioboxx-npm-start-')), IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'info' };
  delete env.IOBOXX_OIDC_ISSUER;
  return env;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('SIGTERM to `npm start` stops the server it started', async () => {
  const npm = spawn('npm', ['start'], { cwd: root, env: startEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  npm.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'exit', not 'close': an orphaned server still holds npm's stderr open.
  const npmExited = childExit(npm);
  let serverPid: number | undefined;
  try {
    await waitUntil('the server listening', async () => {
      const line = stderr.split('\n').find((l) => l.includes('"http server listening"'));
      if (line !== undefined) serverPid = (JSON.parse(line) as { pid: number }).pid;
      return serverPid !== undefined;
    }, 60_000);
    npm.kill('SIGTERM');
    await npmExited;
    await waitUntil(`the server (pid ${serverPid}) ending after npm was told SIGTERM`, async () => !alive(serverPid!));
    expect(stderr).toContain('"shutdown complete"');
  } finally {
    if (serverPid !== undefined && alive(serverPid)) process.kill(serverPid, 'SIGKILL');
    npm.kill('SIGKILL');
  }
}, 120_000);

test('Ctrl-C at the terminal running `npm start` is one graceful shutdown, not a forced exit', async () => {
  const terminal = spawn('script', ['-qefc', 'npm start', '/dev/null'], { cwd: root, env: startEnv() });
  let output = '';
  terminal.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const closed = new Promise((resolve) => terminal.once('close', resolve));
  try {
    await waitUntil('the server listening', async () => output.includes('"http server listening"'), 60_000);
    terminal.stdin.write('\x03');
    await closed;
    expect(output).toContain('"shutdown complete"');
    expect(output).not.toContain('second signal');
  } finally {
    terminal.kill('SIGKILL');
  }
}, 120_000);
