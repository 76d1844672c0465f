/**
 * Opening a tenant's store, for every transport: a known tenant whose store has vanished is
 * refused before anything is created (vanished-store.ts); otherwise its directory is made or
 * checked (tenant-dir.ts), the store opened, and, once the store exists on disk, the tenant is
 * recorded as known (known-tenants.ts). A data directory from before the records gets each
 * tenant's record on its next open, so an existing store is never refused for want of one.
 */
import { isKnownTenant, recordKnownTenant } from './known-tenants.js';
import { ensureTenantDir, existingTenantDir, tenantDir } from './tenant-dir.js';
import { holdsStore, VanishedStore } from './vanished-store.js';

export async function openTenantStore<T extends { close(): Promise<void> }>(dataDir: string, tenant: string, open: (dir: string) => Promise<T>): Promise<T> {
  const known = await isKnownTenant(dataDir, tenant);
  if (known) {
    if ((await existingTenantDir(dataDir, tenant)) === undefined) throw new VanishedStore(tenant, tenantDir(dataDir, tenant), 'directory missing');
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
