/**
 * After a restart, the work a tenant's store holds for the control plane (access rows not yet
 * staged, finished runs not yet in run_history: Postgres was away when the server stopped)
 * would wait for that tenant's next call. So once the control plane connects, every tenant of
 * the data dir is drained, a few at a time; a store with nothing waiting costs one open.
 */
import { readdir } from 'node:fs/promises';
import { tenantsRoot } from '../tenants/tenant-dir.js';
import { isTenantId } from '../tenants/tenant-id.js';

/** Tenants drained at start; past it the rest wait for their next call (logged). */
export const startupDrainTenantsMax = 100_000;
/** Tenant stores opened for the drain at once (the registry's slots serve calls too). */
export const startupDrainConcurrency = 4;
/** A tenant whose drain has not succeeded by then keeps retrying on its own; the sweep moves on. */
export const startupDrainTenantWaitMs = 30_000;

/** The tenants with a store directory under the data dir (names that are not tenant ids are left alone). */
export async function tenantsOnDisk(dataDir: string): Promise<string[]> {
  const entries = await readdir(tenantsRoot(dataDir), { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  return entries.filter((entry) => entry.isDirectory() && isTenantId(entry.name)).map((entry) => entry.name).sort();
}

/**
 * Runs `drain` for each tenant, `startupDrainConcurrency` at a time, each waited for at most
 * `startupDrainTenantWaitMs`; stops starting new ones once `stopped()`.
 */
export async function drainTenantsInTurn(
  tenants: readonly string[],
  drain: (tenant: string) => Promise<void>,
  stopped: () => boolean,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (!stopped() && next < tenants.length) {
      const tenant = tenants[next++]!;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        drain(tenant),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, startupDrainTenantWaitMs);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
    }
  };
  await Promise.all(Array.from({ length: startupDrainConcurrency }, lane));
}
