/**
 * Which tenants have had a store in this data directory: one empty file per tenant,
 * `${dataDir}/known-tenants/${tenant}`, outside the tenants' own directories, so a tenant
 * directory that disappears (an unmounted volume, an `rm -rf`, a botched restore) leaves its
 * record behind and the next open refuses instead of starting an empty store (tenant-open.ts).
 *
 * One file per tenant rather than one registry file: adding a record is a single create and
 * directory fsync, never a read-modify-write, so processes sharing a data directory (one stdio
 * server per tenant) add theirs without a lock and without losing each other's.
 */
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { mkdirDurable } from '../../storage/io/durable-dir.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { isTenantId, parseTenantId } from './tenant-id.js';

export const knownTenantsDirName = 'known-tenants';

export function knownTenantsRoot(dataDir: string): string {
  return path.resolve(dataDir, knownTenantsDirName);
}

function recordFile(dataDir: string, tenant: string): string {
  return path.join(knownTenantsRoot(dataDir), parseTenantId(tenant));
}

export function isKnownTenant(dataDir: string, tenant: string): Promise<boolean> {
  return nodeFileLayer.exists(recordFile(dataDir, tenant));
}

/**
 * Records `tenant` durably (the file, then its directory fsync'ed). Call only once the tenant's
 * store exists on disk: a record for a store never made would refuse its first open.
 */
export async function recordKnownTenant(dataDir: string, tenant: string): Promise<void> {
  const file = recordFile(dataDir, tenant);
  if (await nodeFileLayer.exists(file)) return;
  const root = knownTenantsRoot(dataDir);
  if (!(await nodeFileLayer.exists(root))) await mkdirDurable(nodeFileLayer, root, dataDir);
  await nodeFileLayer.writeFileDurable(file, new Uint8Array(0));
}

/** Drops the record of `tenant` (durably); false when there was none. */
export async function forgetKnownTenant(dataDir: string, tenant: string): Promise<boolean> {
  const file = recordFile(dataDir, tenant);
  if (!(await nodeFileLayer.exists(file))) return false;
  await nodeFileLayer.unlink(file);
  await nodeFileLayer.fsyncDir(path.dirname(file));
  return true;
}

/** Every recorded tenant, sorted. Names that are not tenant ids (a `.tmp` of an interrupted write) are not records. */
export async function listKnownTenants(dataDir: string): Promise<string[]> {
  const names = await readdir(knownTenantsRoot(dataDir)).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  return names.filter(isTenantId).sort();
}
