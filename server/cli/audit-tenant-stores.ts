/**
 * The tenant stores of a data directory as `audit verify` cross-checks them: each opened read-only
 * (storage/read-only-store.ts, beside a live server too), with the server's control-pending mark
 * of its tenant (control-pending.ts), which says its rows may wait unstaged; and the known tenants
 * whose store vanished (known-tenants.ts), whose open is refused as the server's is.
 */
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { heldAccessLogOf, type HeldAccessLog, type TenantStores } from '../../storage/audit/store-cross-check.js';
import { openStoreReadOnly } from '../../storage/read-only-store.js';
import { lockHolder } from '../../storage/store-lock.js';
import { controlPendingDirName } from '../control/control-pending.js';
import { existingTenantDir, tenantsRoot } from '../tenants/tenant-dir.js';
import { isTenantId } from '../tenants/tenant-id.js';
import { hasTenantRecord } from '../tenants/tenant-record-dir.js';
import { listKnownTenants } from '../tenants/known-tenants.js';
import { holdsStore, VanishedStore } from '../tenants/vanished-store.js';
import { dataDirArgument } from './cli-data-dir.js';
import type { ProgressFn } from './progress.js';

export async function tenantStoresIn(dataDir: string, onProgress?: ProgressFn): Promise<TenantStores> {
  const root = tenantsRoot(dataDir);
  const entries = await readdir(root, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  // As `tenants list`: names that are not tenant ids (a restore's scratch directory) are no tenant's store;
  // a known tenant without one here is a store that vanished, and its unstaged rows with it.
  const dirs = new Set(entries.filter((e) => e.isDirectory() && isTenantId(e.name)).map((e) => e.name));
  const known = new Set(await listKnownTenants(dataDir));
  const tenants = [...new Set([...dirs, ...known])].sort();
  const { memoryModule } = await import('../../tools/index.js');
  return {
    tenants,
    async open(tenant) {
      const dir = path.join(root, tenant);
      // Opened read-only, a known tenant's emptied directory would read as a store with no row: whole.
      if (known.has(tenant)) {
        const existing = await existingTenantDir(dataDir, tenant); // a symlink in its place is refused, as the server refuses it
        if (existing === undefined || !(await holdsStore(existing))) {
          throw new VanishedStore(tenant, dir, existing === undefined ? 'directory missing' : 'no log or snapshot in it', dataDirArgument(dataDir));
        }
      }
      const { store, openByPid } = await openStoreReadOnly(dir, memoryModule, onProgress);
      let accessLog: HeldAccessLog;
      try {
        accessLog = await heldAccessLogOf(store);
      } catch (error) {
        await store.close();
        throw error;
      }
      return {
        accessLog,
        openByPid,
        heldNow: () => lockHolder(dir) !== null,
        workWaiting: () => hasTenantRecord(dataDir, controlPendingDirName, tenant),
        close: () => store.close(),
      };
    },
  };
}
