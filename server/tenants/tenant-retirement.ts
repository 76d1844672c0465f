/**
 * Retiring a tenant, as an operator does it (`tenants forget` / `tenants delete`):
 *  - forget drops the tenant's known-tenant record (and its control-pending mark: a start must not
 *    drain, so recreate, a retired tenant), so its next use starts an empty store. It is
 *    for a store that has vanished (vanished-store.ts): a store still in place would get its
 *    record back on its next open, so forgetting one is refused (delete it instead).
 *  - delete moves the tenant's directory aside, whole, into `${dataDir}/trash/<UTC time>/`
 *    (never removing a byte: the operator empties the trash), then forgets the tenant. It holds
 *    the store's LOCK while it moves the directory, so no process opens the store meanwhile, and
 *    it refuses a store a live process has open.
 */
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { MemoryError } from '../../storage/errors.js';
import { mkdirDurable } from '../../storage/io/durable-dir.js';
import { dataDirArgument } from '../cli/cli-data-dir.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { lockFileName, lockHolder, takeStoreLock } from '../../storage/store-lock.js';
import { clearControlPending } from '../control/control-pending.js';
import { forgetKnownTenant, isKnownTenant } from './known-tenants.js';
import { existingTenantDir, tenantsRoot } from './tenant-dir.js';
import { holdsStore } from './vanished-store.js';

export const trashDirName = 'trash';

export function trashRoot(dataDir: string): string {
  return path.resolve(dataDir, trashDirName);
}

export interface ForgetReport {
  readonly tenant: string;
  /** False: there was no record to drop (nothing changed). */
  readonly forgotten: boolean;
}

export interface DeleteReport extends ForgetReport {
  /** Where the tenant's directory now is, or null when it had none. */
  readonly movedTo: string | null;
}

export async function forgetTenant(dataDir: string, tenant: string): Promise<ForgetReport> {
  const dir = await existingTenantDir(dataDir, tenant);
  if (dir !== undefined && (await holdsStore(dir))) {
    throw new MemoryError('conflict', `tenant ${tenant} still has its store in ${dir}; forgetting it would not start it over`,
      `to retire the store, run \`ioboxx-memory tenants delete ${tenant} --yes${dataDirArgument(dataDir)}\` (it moves the directory to the trash)`);
  }
  return { tenant, forgotten: await forgetTenantRecords(dataDir, tenant) };
}

export async function deleteTenant(dataDir: string, tenant: string, nowMs: number): Promise<DeleteReport> {
  const dir = await existingTenantDir(dataDir, tenant);
  if (dir === undefined) {
    if (!(await isKnownTenant(dataDir, tenant))) throw new MemoryError('not_found', `no tenant ${tenant} in ${dataDir}`, `see \`ioboxx-memory tenants list${dataDirArgument(dataDir)}\``);
    return { tenant, movedTo: null, forgotten: await forgetTenantRecords(dataDir, tenant) };
  }
  const holder = lockHolder(dir);
  if (holder !== null) throw new MemoryError('conflict', `the store of ${tenant} is open in process ${holder}`, 'stop that process first');
  // Held while the directory moves: a server opening the tenant now is refused, not let in.
  const release = await takeStoreLock(dir, nodeFileLayer);
  const dayDir = path.join(trashRoot(dataDir), new Date(nowMs).toISOString().replaceAll(':', '-'));
  const movedTo = path.join(dayDir, tenant);
  try {
    await mkdirDurable(nodeFileLayer, dayDir, dataDir);
    if ((await readdir(dayDir)).includes(tenant)) throw new MemoryError('conflict', `${movedTo} exists already`, 'retry in a moment');
    await nodeFileLayer.rename(dir, movedTo);
    // Both names durable before the record goes: a crash leaves the tenant either in place or in the trash.
    await nodeFileLayer.fsyncDir(tenantsRoot(dataDir));
    await nodeFileLayer.fsyncDir(dayDir);
  } finally {
    await release(); // its LOCK moved with the directory: this only lets go of it in this process
  }
  await nodeFileLayer.unlink(path.join(movedTo, lockFileName));
  return { tenant, movedTo, forgotten: await forgetTenantRecords(dataDir, tenant) };
}

/** Drops what the data dir records of `tenant` outside its directory; true when it was known. */
async function forgetTenantRecords(dataDir: string, tenant: string): Promise<boolean> {
  // The mark first: a crash between the two leaves a known tenant with no drain at start, not a drain that recreates it.
  await clearControlPending(dataDir, tenant);
  return forgetKnownTenant(dataDir, tenant);
}
