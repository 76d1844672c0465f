/**
 * The process's open-files limit (`ulimit -n`) against what `IOBOXX_MAX_OPEN_TENANTS` open
 * stores need. Past the limit a tenant's open fails EMFILE, and so does every accept(), socket
 * and Postgres connection the server makes while the stores hold the descriptors: refuse the
 * start and say which of the two to change, instead of failing calls at random under load.
 */

/**
 * Descriptors one open tenant store holds at the most: its active segment's writer and syncer
 * (held while open), and for a moment during a segment roll or a snapshot the next segment's
 * two, or the snapshot file and its directory.
 */
export const openStoreFilesBudget = 4;
/** Descriptors kept for everything but the stores: client sockets, Postgres, S3, logs, Node's own. */
export const servingFilesReserve = 512;

/** The soft `Max open files` of /proc/self/limits, or undefined (not Linux, unlimited, unreadable). */
export function openFilesSoftLimit(procLimits: string): number | undefined {
  const line = procLimits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft !== undefined && /^[0-9]+$/.test(soft) ? Number(soft) : undefined;
}

/** The descriptors `maxOpenTenants` open stores and the serving around them need. */
export function openFilesNeeded(maxOpenTenants: number): number {
  return maxOpenTenants * openStoreFilesBudget + servingFilesReserve;
}

/** Why the limit is too low for `maxOpenTenants`, with what to change; undefined when it is enough (or unknown). */
export function openFilesProblem(maxOpenTenants: number, softLimit: number | undefined): string | undefined {
  if (softLimit === undefined) return undefined;
  const needed = openFilesNeeded(maxOpenTenants);
  if (needed <= softLimit) return undefined;
  const tenantsThatFit = Math.floor((softLimit - servingFilesReserve) / openStoreFilesBudget);
  return (
    `the open-files limit (ulimit -n) is ${softLimit}, below the ${needed} that IOBOXX_MAX_OPEN_TENANTS = ${maxOpenTenants} needs ` +
    `(${openStoreFilesBudget} per open tenant store + ${servingFilesReserve} for serving): raise it to ${needed} ` +
    (tenantsThatFit >= 1 ? `or set IOBOXX_MAX_OPEN_TENANTS to ${tenantsThatFit} or less` : '(it is too low to serve even one tenant)')
  );
}
