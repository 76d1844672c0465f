/**
 * Which tenants have had a store in this data directory: one empty file per tenant,
 * `${dataDir}/known-tenants/${tenant}` (tenant-record-dir.ts), outside the tenants' own
 * directories, so a tenant directory that disappears (an unmounted volume, an `rm -rf`, a
 * botched restore) leaves its record behind and the next open refuses instead of starting an
 * empty store (tenant-open.ts).
 */
import { addTenantRecord, hasTenantRecord, listTenantRecords, removeTenantRecord, tenantRecordRoot } from './tenant-record-dir.js';

export const knownTenantsDirName = 'known-tenants';

export function knownTenantsRoot(dataDir: string): string {
  return tenantRecordRoot(dataDir, knownTenantsDirName);
}

export function isKnownTenant(dataDir: string, tenant: string): Promise<boolean> {
  return hasTenantRecord(dataDir, knownTenantsDirName, tenant);
}

/**
 * Records `tenant` durably. Call only once the tenant's store exists on disk: a record for a
 * store never made would refuse its first open.
 */
export function recordKnownTenant(dataDir: string, tenant: string): Promise<void> {
  return addTenantRecord(dataDir, knownTenantsDirName, tenant);
}

/** Drops the record of `tenant` (durably); false when there was none. */
export function forgetKnownTenant(dataDir: string, tenant: string): Promise<boolean> {
  return removeTenantRecord(dataDir, knownTenantsDirName, tenant);
}

/** Every recorded tenant, sorted. */
export function listKnownTenants(dataDir: string): Promise<string[]> {
  return listTenantRecords(dataDir, knownTenantsDirName);
}
