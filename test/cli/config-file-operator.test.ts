/**
 * IOBOXX_CONFIG_FILE is read by the operator commands as `serve` reads it: a data directory or
 * S3 set in the file is the one `tenants`, `backup`, `restore` and `audit` act on, not ./data and
 * "S3 is not configured".
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, cliEnv } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-config-file-operator-'));
// Not ./data of the working directory, which the commands would find without the file.
const dataDir = path.join(work, 'memory-data');

/** cliEnv() with nothing of the file's settings in the environment, and IOBOXX_CONFIG_FILE naming `settings`. */
function envWithFile(settings: Record<string, string>): NodeJS.ProcessEnv {
  const file = path.join(work, `config-${Object.keys(settings).length}.json`);
  writeFileSync(file, JSON.stringify(settings));
  const env: NodeJS.ProcessEnv = { ...cliEnv(), IOBOXX_CONFIG_FILE: file };
  for (const name of ['IOBOXX_DATA_DIR', 'S3_ENDPOINT', 'S3_REGION', 'S3_BUCKET', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) delete env[name];
  return env;
}

async function run(args: readonly string[], env: NodeJS.ProcessEnv) {
  const [node, ...rest] = cliCommand(args);
  // Outside the repository, where ./data is not the data directory either.
  return runProcess(node!, rest, { env, cwd: work });
}

beforeAll(() => writeMemoryStore(path.join(dataDir, 'tenants', 'acme'), 10, 64 * 1024));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.concurrent('operator commands under IOBOXX_CONFIG_FILE', () => {
  test('tenants list acts on the IOBOXX_DATA_DIR of the file', async () => {
    const r = await run(['tenants', 'list', '--json'], envWithFile({ IOBOXX_DATA_DIR: dataDir }));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, dataDir, tenants: [{ tenant: 'acme', lastOffset: 9 }] });
  });

  test('restore --from-s3 uses the S3 of the file (here one nothing listens on), not "S3 is not configured"', async () => {
    const s3 = { S3_ENDPOINT: 'http://127.0.0.1:9', S3_REGION: 'r', S3_BUCKET: 'b', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' };
    const r = await run(['restore', path.join(work, 'download'), 'acme', '--from-s3', 'latest', '--data-dir', path.join(work, 'restored'), '--json'], envWithFile(s3));
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'unavailable', message: expect.stringContaining('S3 at http://127.0.0.1:9 could not be reached') });
  });
});
