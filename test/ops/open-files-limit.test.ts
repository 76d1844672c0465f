import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { openFilesSoftLimit, openFilesNeeded, openFilesProblem, openStoreFilesBudget, servingFilesReserve } from '../../server/ops/open-files-limit.js';
import { openTenantsMaxDefault } from '../../server/tenants/registry.js';
import { baseEnv, repoRoot, serverBin } from '../e2e/server-process.js';

const procLimits = `Limit                     Soft Limit           Hard Limit           Units
Max processes             95488                95488                processes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('open-files limit against open tenant stores', () => {
  test('the soft limit is read from /proc/self/limits; unlimited or missing is unknown', () => {
    expect(openFilesSoftLimit(procLimits)).toBe(1024);
    expect(openFilesSoftLimit(procLimits.replace('1024 ', 'unlimited'))).toBeUndefined();
    expect(openFilesSoftLimit('')).toBeUndefined();
  });

  test('the default bound fits the common default limit of 1024', () => {
    expect(openFilesProblem(openTenantsMaxDefault, 1024)).toBeUndefined();
    expect(openFilesProblem(openTenantsMaxDefault, undefined)).toBeUndefined();
  });

  test('a bound the limit cannot hold is named with both ways out', () => {
    const problem = openFilesProblem(1000, 1024);
    expect(problem).toContain(`the open-files limit (ulimit -n) is 1024, below the ${openFilesNeeded(1000)}`);
    expect(problem).toContain(`set IOBOXX_MAX_OPEN_TENANTS to ${Math.floor((1024 - servingFilesReserve) / openStoreFilesBudget)} or less`);
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
      env: { ...baseEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: '0', IOBOXX_MAX_OPEN_TENANTS: '1000' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.stderr).toContain('the open-files limit (ulimit -n) is 600, below the 4512 that IOBOXX_MAX_OPEN_TENANTS = 1000 needs');
    expect(run.status).toBe(1);
  }, 60_000);
});
