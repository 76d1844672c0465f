/**
 * `serve --print-config` prints the effective configuration (README): the bounds derived at start
 * are in it with their values, not left out because no variable set them. A lone tenant's
 * bound is twice IOBOXX_TENANT_INFLIGHT_MAX; the HTTP stores' memory budget is the machine's.
 * The listener is refused (its port held here) so the server ends right after printing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { storesMemoryBytesMaxOfMachine } from '../../server/tenants/stores-memory-budget.js';
import { runProcess } from '../support/run-process.js';
import { cliCommand, cliEnv } from './cli-process.js';
import { heldPort } from './held-port.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-print-config-'));
const heldPortNumber = heldPort();
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** The JSON object --print-config writes to stderr first. */
function printed(stderr: string): Record<string, unknown> {
  return JSON.parse(stderr.slice(0, stderr.indexOf('\n}\n') + 2)) as Record<string, unknown>;
}

test('serve --http --print-config names the lone tenant\'s bound and the stores\' memory budget in force', async () => {
  const port = heldPortNumber();
  const env: NodeJS.ProcessEnv = { ...cliEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_HOST: '127.0.0.1', IOBOXX_HTTP_PORT: String(port), IOBOXX_TENANT_INFLIGHT_MAX: '10' };
  delete env.IOBOXX_TENANT_ALONE_INFLIGHT_MAX;
  delete env.IOBOXX_STORES_MEMORY_BYTES_MAX;
  const [node, ...args] = cliCommand(['serve', '--http', '--print-config']);
  const r = await runProcess(node!, args, { env });
  expect(r.code, r.stderr).toBe(1); // the port is held: the start ends after the print
  expect(printed(r.stderr)).toMatchObject({
    loadLimits: { inFlightMax: 10, aloneInFlightMax: 20 },
    storesMemoryBytesMax: storesMemoryBytesMaxOfMachine(),
  });
});
