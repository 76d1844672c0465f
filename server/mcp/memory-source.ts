/**
 * Where a server instance gets its tenant's memory:
 * - given (one memory, open for the server's whole life: unit tests);
 * - opened on first use (stdio: the 2.x client's disposable `server/discover` probe process
 *   never needs the store, so it must not pay to open and recover it);
 * - leased per request (a 2025-era HTTP session: it lives for many calls, and between them its
 *   tenant's store may be evicted for another tenant and reopened; the session's change feed
 *   follows the tenant's commits across those reopens, not one store's. A 2026-era request too:
 *   its call holds the store while it runs, even if the client has dropped the POST).
 */
import type { TxRecord } from '../../storage/changes.js';
import type { Unsubscribe } from '../../storage/store.js';
import type { TenantMemory } from '../../tools/memory.js';

export type CommitListener = (txs: readonly TxRecord[]) => void;
/** Listens to a tenant's durable commits from now on, until the returned function is called. */
export type OnCommit = (listener: CommitListener) => Unsubscribe;

/** A hold on the tenant's open memory: its store is not closed until released. */
export interface MemoryLease {
  readonly memory: TenantMemory;
  /** Once, when the request or stream that took the lease is over. */
  release(): void;
}

export interface LeasedMemory {
  /** A lease for one request. */
  lease(): Promise<MemoryLease>;
  /** The tenant's durable commits from now on, whichever store instance makes them. */
  readonly onCommit: OnCommit;
}

export type MemorySource = TenantMemory | (() => Promise<TenantMemory>) | LeasedMemory;

/** Runs `work` with the memory, which stays open until `work` settles. */
export type WithMemory = <R>(work: (memory: TenantMemory) => Promise<R>) => Promise<R>;

function isLeased(source: MemorySource): source is LeasedMemory {
  return typeof source === 'object' && 'lease' in source;
}

/**
 * The instance's access to its memory. `onCommits` runs once, with where the instance hears its
 * tenant's commits, before any request's work sees the memory (so a change feed is listening
 * before the first write of this instance): at once for given and leased memory, at the open
 * for memory opened on first use.
 */
export function memoryAccess(source: MemorySource, onCommits: (onCommit: OnCommit) => void): WithMemory {
  if (isLeased(source)) {
    onCommits(source.onCommit);
    return async (work) => {
      const lease = await source.lease();
      try {
        return await work(lease.memory);
      } finally {
        lease.release();
      }
    };
  }
  if (typeof source !== 'function') {
    onCommits((listener) => source.store.onCommit(listener));
    return (work) => work(source);
  }
  let opening: Promise<TenantMemory> | undefined;
  const opened = () =>
    (opening ??= source().then((memory) => {
      onCommits((listener) => memory.store.onCommit(listener));
      return memory;
    }));
  return async (work) => work(await opened());
}
