/**
 * Without DATABASE_URL an audit command works on the embedded control plane a server made in the
 * data directory. A mistyped --data-dir (none there, or no control-pg in it) is refused naming
 * it, and nothing is created: before, the command made a new, empty database there and answered
 * "no hole in its staging", as if the tenant's staging had been checked.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, cliEnv } from './cli-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-audit-embedded-data-dir-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function embeddedEnv(): NodeJS.ProcessEnv {
  const env = cliEnv();
  delete env.DATABASE_URL;
  delete env.DATABASE_DIRECT_URL;
  return env;
}

async function closeGap(dataDir: string) {
  const [node, ...args] = cliCommand(['audit', 'close-gap', '--tenant', 'acme', '--data-dir', dataDir, '--json']);
  return runProcess(node!, args, { env: embeddedEnv() });
}

describe.concurrent('audit close-gap on a data directory no server used', () => {
  test('a data directory that does not exist: refused naming it, and not created', async () => {
    const dataDir = path.join(work, 'typo');
    const r = await closeGap(dataDir);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'not_found', message: `data directory ${dataDir} does not exist`, hint: expect.stringContaining('--data-dir') });
    expect(existsSync(dataDir)).toBe(false);
  });

  test('a data directory without the embedded database: refused naming it, and no database created', async () => {
    const dataDir = path.join(work, 'stores-only');
    mkdirSync(path.join(dataDir, 'tenants'), { recursive: true });
    const r = await closeGap(dataDir);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'not_found', message: expect.stringContaining(`no embedded control-plane database in ${dataDir}`) });
    expect(existsSync(path.join(dataDir, 'control-pg'))).toBe(false);
  });
});
