/**
 * Opening a tenant's store, for every transport: a known tenant whose store has vanished is
 * refused before anything is created (vanished-store.ts); otherwise its directory is made or
 * checked (tenant-dir.ts), the store opened, and, once the store exists on disk, the tenant is
 * recorded as known (known-tenants.ts). A data directory from before the records gets each
 * tenant's record on its next open, so an existing store is never refused for want of one.
 */
import { lstat } from 'node:fs/promises';
import { isKnownTenant, recordKnownTenant } from './known-tenants.js';
import { ensureTenantDir, tenantDir } from './tenant-dir.js';
import { holdsStore, VanishedStore } from './vanished-store.js';

export async function openTenantStore<T extends { close(): Promise<void> }>(dataDir: string, tenant: string, open: (dir: string) => Promise<T>): Promise<T> {
  const known = await isKnownTenant(dataDir, tenant);
  if (known) {
    const dir = tenantDir(dataDir, tenant);
    const present = await lstat(dir).then(() => true, (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    });
    if (!present) throw new VanishedStore(tenant, dir, 'directory missing');
  }
  const dir = await ensureTenantDir(dataDir, tenant);
  if (known && !(await holdsStore(dir))) throw new VanishedStore(tenant, dir, 'no log or snapshot in it');
  const store = await open(dir);
  if (!known) {
    try {
      await recordKnownTenant(dataDir, tenant);
    } catch (error) {
      // Unrecorded, a later loss of this store would go unnoticed: refuse to serve it.
      await store.close().catch(() => undefined);
      throw error;
    }
  }
  return store;
}
