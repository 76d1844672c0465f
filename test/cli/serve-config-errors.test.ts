/**
 * `serve` with settings that are not numbers where numbers are due: exit 2 before anything
 * starts, every bad variable named with the range it takes (zod alone said "received NaN").
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, cliEnv } from './cli-process.js';

test('serve --http with IOBOXX_HTTP_PORT=abc and IOBOXX_MAX_OPEN_TENANTS=1.5: exit 2 naming each with its range', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-config-errors-'));
  const env = { ...cliEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: 'abc', IOBOXX_MAX_OPEN_TENANTS: '1.5', IOBOXX_SHUTDOWN_MS: '5' };
  const [node, ...args] = cliCommand(['serve', '--http']);
  const r = await runProcess(node!, args, { env });
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain('invalid configuration (3 problems)');
  expect(r.stderr).toContain('IOBOXX_HTTP_PORT: expected an integer from 0 to 65535');
  expect(r.stderr).toContain('IOBOXX_MAX_OPEN_TENANTS: expected an integer from 1 to 100000');
  expect(r.stderr).toContain('IOBOXX_SHUTDOWN_MS: expected an integer from 100 to 600000');
  expect(r.stderr).not.toContain('NaN');
});
