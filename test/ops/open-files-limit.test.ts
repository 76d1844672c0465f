import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { openFilesSoftLimit, openFilesNeeded, openFilesProblem, openStoreFilesBudget, servingFilesReserve, type OpenStoresBound } from '../../server/ops/open-files-limit.js';
import { openTenantsMaxDefault } from '../../server/tenants/registry.js';
import { baseEnv, repoRoot, serverBin } from '../e2e/server-process.js';

const procLimits = `Limit                     Soft Limit           Hard Limit           Units
Max processes             95488                95488                processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

const tokenMode = (maxOpenTenants: number): OpenStoresBound => ({ mode: 'token', maxOpenTenants });
/** Token mode without an issuer reachable: the check runs before anything connects to it. */
const tokenModeEnv = { IOBOXX_OIDC_ISSUER: 'http://127.0.0.1:9/realms/none', IOBOXX_OIDC_AUDIENCE: 'ioboxx-memory' };

describe('open-files limit against open tenant stores', () => {
  test('the soft limit is read from /proc/self/limits; unlimited or missing is unknown', () => {
    expect(openFilesSoftLimit(procLimits)).toBe(1024);
    expect(openFilesSoftLimit(procLimits.replace('1024 ', 'unlimited'))).toBeUndefined();
    expect(openFilesSoftLimit('')).toBeUndefined();
  });

  test('the default bound fits the common default limit of 1024', () => {
    expect(openFilesProblem(tokenMode(openTenantsMaxDefault), 1024)).toBeUndefined();
    expect(openFilesProblem(tokenMode(openTenantsMaxDefault), undefined)).toBeUndefined();
  });

  test('a bound the limit cannot hold is named with both ways out', () => {
    const problem = openFilesProblem(tokenMode(1000), 1024);
    expect(problem).toContain(`the open-files limit (ulimit -n) is 1024, below the ${openFilesNeeded(tokenMode(1000))}`);
    expect(problem).toContain(`set IOBOXX_MAX_OPEN_TENANTS to ${Math.floor((1024 - servingFilesReserve) / openStoreFilesBudget)} or less`);
  });

  test('local mode needs the files of its one tenant store, whatever IOBOXX_MAX_OPEN_TENANTS says', () => {
    const local: OpenStoresBound = { mode: 'local', maxOpenTenants: 1000 };
    expect(openFilesNeeded(local)).toBe(openStoreFilesBudget + servingFilesReserve);
    expect(openFilesProblem(local, 600)).toBeUndefined();
    const problem = openFilesProblem(local, 256);
    expect(problem).toContain(`the open-files limit (ulimit -n) is 256, below the ${openStoreFilesBudget + servingFilesReserve} that local mode's one tenant store needs`);
    expect(problem).not.toContain('IOBOXX_MAX_OPEN_TENANTS');
  });
});

describe('serve --http under a low ulimit -n', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-open-files-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  // Without the check the server started and failed tenant opens (and accepts) with EMFILE under load.
  test('too many open tenants for the limit: exit 1 at start, saying what to change', () => {
    const run = spawnSync('sh', ['-c', `ulimit -n 600 && exec "${process.execPath}" "${serverBin}" serve --http`], {
      cwd: repoRoot,
      env: { ...baseEnv(), ...tokenModeEnv, IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: '0', IOBOXX_MAX_OPEN_TENANTS: '1000' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.stderr).toContain('the open-files limit (ulimit -n) is 600, below the 4512 that IOBOXX_MAX_OPEN_TENANTS = 1000 needs');
    expect(run.status).toBe(1);
  }, 60_000);

  // Before, local mode was refused like token mode with 1000 stores (4512 files), though it opens one.
  test('local mode starts under a limit that holds its one tenant store, whatever IOBOXX_MAX_OPEN_TENANTS says', async () => {
    const child = spawn('sh', ['-c', `ulimit -n 600 && exec "${process.execPath}" "${serverBin}" serve --http`], {
      cwd: repoRoot,
      // A control plane that is away (connect retried in the background): no embedded Postgres to start.
      env: { ...baseEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: '0', IOBOXX_MAX_OPEN_TENANTS: '1000', DATABASE_URL: 'postgres://nobody@127.0.0.1:9/none' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = once(child, 'exit');
    const stderr: string[] = [];
    let listening = false;
    for await (const line of createInterface({ input: child.stderr! })) {
      stderr.push(line);
      if (line.includes('http server listening')) {
        listening = true;
        break;
      }
    }
    child.kill('SIGTERM');
    await exited;
    expect(listening, stderr.join('\n')).toBe(true);
  }, 60_000);
});
