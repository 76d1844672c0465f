/**
 * Each tenant's store lives in its own directory, `${dataDir}/tenants/${tenant}`. The path is
 * built only from a pattern-checked id, and both the built path and (once it exists) the real
 * path on disk are checked to sit directly under the tenants root, so neither a crafted id nor a
 * planted symlink can point one tenant's store at another place.
 */
import { lstat, realpath } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { MemoryError } from '../../storage/errors.js';
import { mkdirDurable } from '../../storage/io/durable-dir.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { parseTenantId } from './tenant-id.js';

export const tenantsDirName = 'tenants';

export function tenantsRoot(dataDir: string): string {
  return resolve(dataDir, tenantsDirName);
}

export function tenantDir(dataDir: string, tenant: string): string {
  const id = parseTenantId(tenant);
  const root = tenantsRoot(dataDir);
  const dir = join(root, id);
  if (dirname(dir) !== root) {
    throw new MemoryError('internal', `tenant directory ${dir} escapes ${root}`);
  }
  return dir;
}

/** The tenant's directory when it exists, undefined when it does not; anything but a plain directory there is refused. */
export async function existingTenantDir(dataDir: string, tenant: string): Promise<string | undefined> {
  const dir = tenantDir(dataDir, tenant);
  const stats = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (stats === undefined) return undefined;
  if (!stats.isDirectory() || stats.isSymbolicLink()) {
    throw new MemoryError('forbidden', `tenant directory ${dir} is not a plain directory`, 'move the link or file in its place aside');
  }
  return dir;
}

/** Creates the tenant's directory if needed and returns it, refusing symlinks and escapes. */
export async function ensureTenantDir(dataDir: string, tenant: string): Promise<string> {
  const root = tenantsRoot(dataDir);
  // Created only when missing: a tenant's directory exists on every open after its first.
  let dir = await existingTenantDir(dataDir, tenant);
  if (dir === undefined) {
    // Durable before the tenant is recorded as known (tenant-open.ts): a record whose directory a
    // crash then loses would refuse the tenant as vanished.
    await mkdirDurable(nodeFileLayer, tenantDir(dataDir, tenant), dirname(root));
    dir = await existingTenantDir(dataDir, tenant);
    if (dir === undefined) throw new MemoryError('unavailable', `tenant directory ${tenantDir(dataDir, tenant)} was removed as it was made`, 'retry');
  }
  const [realDir, realRoot] = await Promise.all([realpath(dir), realpath(root)]);
  if (dirname(realDir) !== realRoot) {
    throw new MemoryError('forbidden', `tenant directory ${dir} resolves outside ${realRoot}`);
  }
  return dir;
}
