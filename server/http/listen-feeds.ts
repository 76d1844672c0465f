/**
 * The open subscriptions/listen streams of each tenant, indexed by the resource URIs they listen
 * to. A tenant's commits are heard once for all its streams (one `commitsOf` listener per tenant
 * with a stream open): each commit's changed URIs are worked out once and reach only the streams
 * listening to them. Before, each stream worked them out again and tested every one: with a
 * tenant's 1,024 streams (listenStreamsPerTenantMax), each commit cost a thousand times the work,
 * on the one thread every tenant's commits share.
 */
import type { ResourceCatalog } from '../../resources/catalog.js';
import type { Unsubscribe } from '../../storage/store.js';
import { changedUrisOf } from '../mcp/change-feed.js';
import type { CommitsOf } from './seams.js';

/** One stream's delivery of an update for `uri` (it may drop it: a stream cut for its backlog). */
export type ListenDelivery = (uri: string) => void;

interface TenantFeed {
  /** URI -> the deliveries of the streams listening to it. */
  readonly byUri: Map<string, Set<ListenDelivery>>;
  streams: number;
  readonly stop: Unsubscribe;
}

export class ListenFeeds {
  private readonly tenants = new Map<string, TenantFeed>();

  constructor(private readonly catalog: ResourceCatalog, private readonly commitsOf: CommitsOf) {}

  /** `deliver` hears each update of `uris` in `tenant`, in commit order, from now until the returned stop. */
  add(tenant: string, uris: ReadonlySet<string>, deliver: ListenDelivery): Unsubscribe {
    if (uris.size === 0) return () => undefined;
    const feed = this.tenants.get(tenant) ?? this.open(tenant);
    feed.streams++;
    for (const uri of uris) {
      let listening = feed.byUri.get(uri);
      if (listening === undefined) feed.byUri.set(uri, (listening = new Set()));
      listening.add(deliver);
    }
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      for (const uri of uris) {
        const listening = feed.byUri.get(uri);
        listening?.delete(deliver);
        if (listening?.size === 0) feed.byUri.delete(uri);
      }
      if (--feed.streams > 0) return;
      feed.stop();
      this.tenants.delete(tenant);
    };
  }

  private open(tenant: string): TenantFeed {
    const byUri = new Map<string, Set<ListenDelivery>>();
    const stop = this.commitsOf(tenant, (txs) => {
      for (const uris of changedUrisOf(this.catalog, txs)) {
        for (const uri of uris) {
          const listening = byUri.get(uri);
          if (listening !== undefined) for (const deliver of listening) deliver(uri);
        }
      }
    });
    const feed: TenantFeed = { byUri, streams: 0, stop };
    this.tenants.set(tenant, feed);
    return feed;
  }
}
