/**
 * Opening a tenant's store through openTenantStore (every transport does): a tenant is recorded
 * as known once its store exists, and a data directory from before the records is backfilled.
 * The store is a fake that, like a real one, leaves a log segment in its directory.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { segmentFileName } from '../../storage/log/segment.js';
import { isKnownTenant, knownTenantsRoot, recordKnownTenant } from '../../server/tenants/known-tenants.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';
import { openTenantStore } from '../../server/tenants/tenant-open.js';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-tenant-open-'));
});
afterEach(() => rm(dataDir, { recursive: true, force: true }));

let opened: string[] = [];
async function fakeStore(dir: string): Promise<{ close(): Promise<void> }> {
  await mkdir(join(dir, 'log'), { recursive: true });
  await writeFile(join(dir, 'log', segmentFileName(0)), '');
  opened.push(dir);
  return { close: async () => undefined };
}
beforeEach(() => {
  opened = [];
});

describe('known tenants', () => {
  test('a new tenant is recorded as known once its store is open, and not when its open fails', async () => {
    await openTenantStore(dataDir, 'acme', fakeStore);
    expect(await isKnownTenant(dataDir, 'acme')).toBe(true);
    await expect(openTenantStore(dataDir, 'beta', async () => { throw new Error('open failed'); })).rejects.toThrow('open failed');
    expect(await isKnownTenant(dataDir, 'beta')).toBe(false);
    // Its record lives outside the tenant's own directory.
    expect(await readdir(knownTenantsRoot(dataDir))).toEqual(['acme']);
  });

  test('a store from before the records opens as it is and gets its record (backfill)', async () => {
    await fakeStore(tenantDir(dataDir, 'old'));
    expect(await isKnownTenant(dataDir, 'old')).toBe(false);
    await openTenantStore(dataDir, 'old', fakeStore);
    expect(await isKnownTenant(dataDir, 'old')).toBe(true);
  });
});
