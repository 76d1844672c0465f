/**
 * Each tenant's durable commits, heard across its store's closes and reopens. The registry
 * closes an idle or evicted store and opens it again on the next request; a 2025-era session
 * outlives both and must hear every commit once. The store's LOCK makes this process its only
 * writer, so no commit happens while the store is closed: listening to each newly opened store
 * before it serves any request (`attach`, from the registry's open) misses nothing, and the old
 * store, closed, commits nothing more (no commit is heard twice).
 */
import type { Unsubscribe } from '../../storage/store.js';
import type { CommitListener, OnCommit } from '../mcp/memory-source.js';

/** A store instance, as far as its commits go. */
export interface CommitSource {
  readonly onCommit: OnCommit;
}

export class TenantCommits {
  private readonly listeners = new Map<string, Set<CommitListener>>();

  /** A newly opened store of `tenant`: call before it serves any request. */
  attach(tenant: string, store: CommitSource): void {
    store.onCommit((txs) => {
      const listening = this.listeners.get(tenant);
      if (listening !== undefined) for (const listener of listening) listener(txs);
    });
  }

  /** `tenant`'s commits from now on, whether or not its store is open now. */
  listen(tenant: string, listener: CommitListener): Unsubscribe {
    let listening = this.listeners.get(tenant);
    if (listening === undefined) this.listeners.set(tenant, (listening = new Set()));
    const own = listening;
    // A distinct entry per call: the same function listening twice is heard twice, as on a store.
    const entry: CommitListener = (txs) => listener(txs);
    own.add(entry);
    return () => {
      own.delete(entry);
      if (own.size === 0 && this.listeners.get(tenant) === own) this.listeners.delete(tenant);
    };
  }
}
