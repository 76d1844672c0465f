/**
 * `npm start` is README's way to run the server, and a supervisor that started it that way
 * (a container's init, a process manager, `kill` by the pid it knows) stops it by signalling npm.
 * npm hands the signal to the shell running the script; the server must get it too, drain and
 * exit, not live on as an orphan that keeps the port and its stores' LOCKs.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { waitUntil } from '../support/wait-until.js';
import { root } from './cli-process.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('SIGTERM to `npm start` stops the server it started', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-npm-start-'));
  const env: NodeJS.ProcessEnv = { ...process.env, IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'info' };
  delete env.IOBOXX_OIDC_ISSUER;
  const npm = spawn('npm', ['start'], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  npm.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'exit', not 'close': an orphaned server still holds npm's stderr open.
  const npmExited = new Promise((resolve) => npm.once('exit', resolve));
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
