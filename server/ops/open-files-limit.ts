/**
 * The process's open-files limit (`ulimit -n`) against what the stores this mode can open need
 * (`IOBOXX_MAX_OPEN_TENANTS` with tokens; the one `local` tenant's store in local mode). Past the limit a tenant's open fails EMFILE, and so does every accept(), socket
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

/** What bounds the open stores: the mode (local mode serves one tenant) and IOBOXX_MAX_OPEN_TENANTS. */
export interface OpenStoresBound {
  readonly mode: 'local' | 'token';
  readonly maxOpenTenants: number;
}

/** Stores this mode can have open at once: local mode serves its one tenant, whatever IOBOXX_MAX_OPEN_TENANTS says. */
export function openStoresMax(bound: OpenStoresBound): number {
  return bound.mode === 'local' ? 1 : bound.maxOpenTenants;
}

/** The soft `Max open files` of /proc/self/limits, or undefined (not Linux, unlimited, unreadable). */
export function openFilesSoftLimit(procLimits: string): number | undefined {
  const line = procLimits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft !== undefined && /^[0-9]+$/.test(soft) ? Number(soft) : undefined;
}

/** The descriptors the stores this mode can open and the serving around them need. */
export function openFilesNeeded(bound: OpenStoresBound): number {
  return openStoresMax(bound) * openStoreFilesBudget + servingFilesReserve;
}

/** Why the limit is too low for this mode's open stores, with what to change; undefined when it is enough (or unknown). */
export function openFilesProblem(bound: OpenStoresBound, softLimit: number | undefined): string | undefined {
  if (softLimit === undefined) return undefined;
  const needed = openFilesNeeded(bound);
  if (needed <= softLimit) return undefined;
  const needs = `(${openStoreFilesBudget} per open tenant store + ${servingFilesReserve} for serving): raise it to ${needed}`;
  if (bound.mode === 'local') {
    return `the open-files limit (ulimit -n) is ${softLimit}, below the ${needed} that local mode's one tenant store needs ${needs}`;
  }
  const tenantsThatFit = Math.floor((softLimit - servingFilesReserve) / openStoreFilesBudget);
  return (
    `the open-files limit (ulimit -n) is ${softLimit}, below the ${needed} that IOBOXX_MAX_OPEN_TENANTS = ${bound.maxOpenTenants} needs ${needs} ` +
    (tenantsThatFit >= 1 ? `or set IOBOXX_MAX_OPEN_TENANTS to ${tenantsThatFit} or less` : '(it is too low to serve even one tenant)')
  );
}
