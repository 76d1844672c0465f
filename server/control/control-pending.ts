/**
 * Which tenants' stores hold work the control plane has not taken yet (access rows not staged,
 * finished runs not in run_history): one empty file per tenant, `${dataDir}/control-pending/${tenant}`
 * (tenant-record-dir.ts). Written at a tenant's first change of a working period (and when its
 * drain fails), so a crash leaves it too, and at a clean shutdown for the tenants whose drain had
 * not succeeded; removed once the tenant is drained and has stayed quiet a moment, so `serve
 * --http` drains at start exactly these tenants instead of opening every store of the data dir.
 */
import { lockHolder } from '../../storage/store-lock.js';
import { tenantDir } from '../tenants/tenant-dir.js';
import { addTenantRecord, listTenantRecords, removeTenantRecord } from '../tenants/tenant-record-dir.js';

export const controlPendingDirName = 'control-pending';

export function markControlPending(dataDir: string, tenant: string): Promise<void> {
  return addTenantRecord(dataDir, controlPendingDirName, tenant);
}

export function clearControlPending(dataDir: string, tenant: string): Promise<boolean> {
  return removeTenantRecord(dataDir, controlPendingDirName, tenant);
}

/** The marked tenants, sorted. */
function listControlPending(dataDir: string): Promise<string[]> {
  return listTenantRecords(dataDir, controlPendingDirName);
}

/**
 * The marked tenants a start drains, sorted: not those whose store another live process holds (a
 * stdio server sharing the data dir). That process drains or marks its tenant at its own close;
 * a drain from here would only be refused, and retried every second, until it ends.
 */
export async function controlPendingToDrain(dataDir: string): Promise<string[]> {
  return (await listControlPending(dataDir)).filter((tenant) => {
    const holder = lockHolder(tenantDir(dataDir, tenant));
    return holder === null || holder === process.pid;
  });
}
