/**
 * `serve --http` on a port something already listens on (a second `npm start`, say): exit 1 with
 * one line saying the port is in use and which setting chooses another, not Node's stack trace
 * of `listen EADDRINUSE`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, cliEnv } from './cli-process.js';
import { heldPort } from './held-port.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-port-in-use-'));
const heldPortNumber = heldPort();
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

test('serve --http on a port in use: exit 1 naming the address and IOBOXX_HTTP_PORT, no stack trace', async () => {
  const port = heldPortNumber();
  const env = { ...cliEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_HOST: '127.0.0.1', IOBOXX_HTTP_PORT: String(port) };
  const [node, ...args] = cliCommand(['serve', '--http']);
  const r = await runProcess(node!, args, { env });
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toContain(`ioboxx-memory: cannot listen on 127.0.0.1:${port}: the port is in use (EADDRINUSE): stop what listens there (a server already running?), or choose another port with IOBOXX_HTTP_PORT\n`);
  expect(r.stderr).not.toMatch(/^\s+at /m);
});
