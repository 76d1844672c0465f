/**
 * Opening a tenant's store through openTenantStore (every transport does): a tenant is recorded
 * as known once its store exists, a data directory from before the records is backfilled, and a
 * known tenant whose store has vanished is refused without anything being created. The store is
 * a fake that, like a real one, leaves a log segment in its directory.
 */
import { lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { DamagedStore, diskFullHint, TableNotInModule } from '../../storage/errors.js';
import { segmentFileName } from '../../storage/log/segment.js';
import { isKnownTenant, knownTenantsRoot, recordKnownTenant } from '../../server/tenants/known-tenants.js';
import { refusedUntilOperatorActs, storeOpenRefusal } from '../../server/tenants/open-refusal.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';
import { openTenantStore } from '../../server/tenants/tenant-open.js';
import { VanishedStore } from '../../server/tenants/vanished-store.js';

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

const exists = (p: string) => lstat(p).then(() => true, () => false);

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

describe('a known tenant whose store has vanished', () => {
  test('its directory missing: the open is refused and nothing is created for it', async () => {
    await openTenantStore(dataDir, 'acme', fakeStore);
    await rm(tenantDir(dataDir, 'acme'), { recursive: true });
    opened = [];
    const refusal = await openTenantStore(dataDir, 'acme', fakeStore).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(VanishedStore);
    expect(refusal).toMatchObject({ tenant: 'acme', why: 'directory missing' });
    expect(opened).toEqual([]);
    expect(await exists(tenantDir(dataDir, 'acme'))).toBe(false);
  });

  test('its directory there but holding no log or snapshot: refused, and nothing is written in it', async () => {
    await recordKnownTenant(dataDir, 'acme');
    await mkdir(tenantDir(dataDir, 'acme'), { recursive: true });
    const refusal = await openTenantStore(dataDir, 'acme', fakeStore).catch((e: unknown) => e);
    expect(refusal).toMatchObject({ tenant: 'acme', why: 'no log or snapshot in it' });
    expect(opened).toEqual([]);
    expect(await readdir(tenantDir(dataDir, 'acme'))).toEqual([]);
  });

  test('the caller is told unavailable, with a hint naming restore and `tenants forget`', async () => {
    await recordKnownTenant(dataDir, 'acme');
    const refusal = storeOpenRefusal(await openTenantStore(dataDir, 'acme', fakeStore).catch((e: unknown) => e), tenantDir(dataDir, 'acme'));
    expect(refusal.code).toBe('unavailable');
    expect(refusal.message).toContain('missing');
    expect(refusal.hint).toContain('ioboxx-memory restore');
    expect(refusal.hint).toContain('tenants forget acme --yes');
  });
});

test('a store that cannot be opened for want of disk space is refused saying the disk is full and that an operator must free space, not with a verify the full disk would refuse too', () => {
  const dir = tenantDir(dataDir, 'acme');
  for (const code of ['ENOSPC', 'EDQUOT']) {
    const refusal = storeOpenRefusal(Object.assign(new Error('its LOCK file cannot be written'), { code }), dir);
    expect(refusal).toMatchObject({ code: 'unavailable', message: `the tenant's store cannot be opened: the disk is full (${code}); nothing acknowledged is lost`, hint: diskFullHint });
  }
});

// The hint named the store's absolute path on the server: the operator's log has it, the caller has no use for it.
test('a damaged store is refused with a hint naming the store from the data directory, not its path on the server', () => {
  const dir = tenantDir(dataDir, 'acme');
  const refusal = storeOpenRefusal(new DamagedStore(join(dir, 'log', '00000000000000000000.log'), 96, 'CRC mismatch'), dir);
  expect(refusal).toMatchObject({ code: 'unavailable', message: "the tenant's store cannot be opened; the server log says why" });
  expect(refusal.hint).toBe('retry later; an operator can run `ioboxx-memory store verify DATA_DIR/tenants/acme`');
  expect(`${refusal.message} ${refusal.hint}`).not.toContain(dataDir);
});

// The control worker retried every such refusal every second: only an operator can end it.
describe('which open refusals stand until an operator acts', () => {
  test('a vanished or damaged store, or one holding a table the module does not declare, does; a full disk or a busy lock does not', () => {
    const dir = tenantDir(dataDir, 'acme');
    expect(refusedUntilOperatorActs(storeOpenRefusal(new VanishedStore('acme', dir, 'directory missing'), dir))).toBe(true);
    expect(refusedUntilOperatorActs(storeOpenRefusal(new DamagedStore(join(dir, 'log'), 0, 'bad frame'), dir))).toBe(true);
    expect(refusedUntilOperatorActs(storeOpenRefusal(new TableNotInModule('gone', 'the frame of offset 0'), dir))).toBe(true);
    const full = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    expect(refusedUntilOperatorActs(storeOpenRefusal(full, dir))).toBe(false);
    const held = Object.assign(new Error('store locked by another process'), { code: 'conflict' });
    expect(refusedUntilOperatorActs(storeOpenRefusal(held, dir))).toBe(false);
  });
});
