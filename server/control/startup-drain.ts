/**
 * After a restart, the work a tenant's store holds for the control plane (access rows not yet
 * staged, finished runs not yet in run_history: Postgres was away when the server stopped)
 * would wait for that tenant's next call. So once the control plane connects, the tenants it is
 * given are drained, a few at a time; a store with nothing waiting costs one open. (stdio gives
 * its one tenant; the HTTP server gives the tenants marked at the last shutdown, control-pending.ts:
 * opening every store of a data dir at start would compete with calls for the open-store slots.)
 */

/** Tenants drained at start; past it the rest wait for their next call (logged). */
export const startupDrainTenantsMax = 100_000;
/** Tenant stores opened for the drain at once (the registry's slots serve calls too). */
export const startupDrainConcurrency = 4;
/** A tenant whose drain has not succeeded by then keeps retrying on its own; the sweep moves on. */
export const startupDrainTenantWaitMs = 30_000;

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
