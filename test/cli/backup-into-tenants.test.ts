/**
 * `backup TENANT DIR` with DIR among the tenants' stores (DATA/tenants/...) is refused before
 * anything is written: a backup there would be taken for a tenant's store. The real CLI on a
 * real memory store.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cli, cliCommand, unreachableS3Env } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-into-tenants-'));
const dataDir = path.join(work, 'data');
beforeAll(() => writeMemoryStore(path.join(dataDir, 'tenants', 'acme'), 20, 64 * 1024));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('a backup into DATA/tenants/NEW, into a store, or onto tenants/ itself is refused, nothing written', async () => {
  const destinations = [path.join(dataDir, 'tenants', 'acme-backup'), path.join(dataDir, 'tenants', 'acme', 'backup'), path.join(dataDir, 'tenants')];
  for (const dest of destinations) {
    const r = await cli(['backup', 'acme', dest, '--json', '--data-dir', dataDir]);
    expect(r.code, r.stderr).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'invalid_argument', message: expect.stringContaining("where every directory is taken for a tenant's store") });
  }
  expect(existsSync(destinations[0]!)).toBe(false);
  expect(existsSync(destinations[1]!)).toBe(false);
  const listed = await cli(['tenants', 'list', '--json', '--data-dir', dataDir]);
  expect(listed.code, listed.stderr).toBe(0);
  expect(JSON.stringify(JSON.parse(listed.stdout))).not.toContain('acme-backup');
});

test('a symbolic link on the way (the data directory named through one) does not carry a backup into tenants/ unseen', async () => {
  const linkedData = path.join(work, 'data-link');
  symlinkSync(dataDir, linkedData);
  const dest = path.join(dataDir, 'tenants', 'linked-backup');
  for (const [data, into] of [[linkedData, dest], [dataDir, path.join(linkedData, 'tenants', 'linked-backup')]] as const) {
    const r = await cli(['backup', 'acme', into, '--json', '--data-dir', data]);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'invalid_argument', message: expect.stringContaining("where every directory is taken for a tenant's store") });
  }
  expect(existsSync(dest)).toBe(false);
});

test('restore --from-s3 refuses to download into tenants/ (the target store itself, above all) before asking S3 or writing anything', async () => {
  const restoredData = path.join(work, 'restored');
  for (const into of [path.join(restoredData, 'tenants', 'acme'), path.join(restoredData, 'tenants', 'download')]) {
    // S3 is unreachable here: the refusal must come first, so no download is even tried.
    const [node, ...args] = cliCommand(['restore', into, 'acme', '--from-s3', '00000000000000000019-1', '--json', '--data-dir', restoredData]);
    const r = await runProcess(node!, args, { env: unreachableS3Env() });
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'invalid_argument', message: expect.stringContaining("where every directory is taken for a tenant's store") });
  }
  expect(existsSync(path.join(restoredData, 'tenants')) ? readdirSync(path.join(restoredData, 'tenants')) : []).toEqual([]);
});
