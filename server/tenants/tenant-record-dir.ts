/**
 * A durable set of tenants kept as one empty file per tenant, `${dataDir}/${dirName}/${tenant}`
 * (the known tenants, the tenants with control-plane work waiting).
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

export function tenantRecordRoot(dataDir: string, dirName: string): string {
  return path.resolve(dataDir, dirName);
}

function recordFile(dataDir: string, dirName: string, tenant: string): string {
  return path.join(tenantRecordRoot(dataDir, dirName), parseTenantId(tenant));
}

export function hasTenantRecord(dataDir: string, dirName: string, tenant: string): Promise<boolean> {
  return nodeFileLayer.exists(recordFile(dataDir, dirName, tenant));
}

/** Records `tenant` durably (the file, then its directory fsync'ed); a record already there is kept. */
export async function addTenantRecord(dataDir: string, dirName: string, tenant: string): Promise<void> {
  const file = recordFile(dataDir, dirName, tenant);
  if (await nodeFileLayer.exists(file)) return;
  const root = tenantRecordRoot(dataDir, dirName);
  if (!(await nodeFileLayer.exists(root))) await mkdirDurable(nodeFileLayer, root, dataDir);
  await nodeFileLayer.writeFileDurable(file, new Uint8Array(0));
}

/** Drops the record of `tenant` (durably); false when there was none. */
export async function removeTenantRecord(dataDir: string, dirName: string, tenant: string): Promise<boolean> {
  const file = recordFile(dataDir, dirName, tenant);
  if (!(await nodeFileLayer.exists(file))) return false;
  await nodeFileLayer.unlink(file);
  await nodeFileLayer.fsyncDir(path.dirname(file));
  return true;
}

/** Every recorded tenant, sorted. Names that are not tenant ids (a `.tmp` of an interrupted write) are not records. */
export async function listTenantRecords(dataDir: string, dirName: string): Promise<string[]> {
  const names = await readdir(tenantRecordRoot(dataDir, dirName)).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  return names.filter(isTenantId).sort();
}
