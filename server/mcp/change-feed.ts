/**
 * Resource change notifications from durable commits. `store.onCommit` fires only after a
 * batch is fdatasync'ed (DESIGN §2.1), so nothing sent here can reveal non-durable data; a
 * session hears its tenant's commits through TenantCommits, which forwards the same calls.
 */
import type { Server } from '@modelcontextprotocol/server';
import type { ResourceCatalog } from '../../resources/catalog.js';
import type { TxRecord } from '../../storage/changes.js';
import type { Unsubscribe } from '../../storage/store.js';
import type { Logger } from '../log.js';
import type { OnCommit } from './memory-source.js';

/**
 * Which changed URIs an instance sends:
 * - 'subscribed': those named by resources/subscribe (2025-era sessions: stdio, SSE, sessionful HTTP);
 * - 'all': every changed URI (a 2026-07-28 stdio instance: serveStdio's listen router filters them
 *   per `subscriptions/listen` stream and drops them when none is open);
 * - 'none': per-request HTTP instances (listen streams there are fed by `changedUrisOf` instead).
 */
export type ChangeDelivery = 'subscribed' | 'all' | 'none';

/** The URIs each transaction changed, in offset order, each URI once per transaction. */
export function changedUrisOf(catalog: ResourceCatalog, txs: readonly TxRecord[]): string[][] {
  return txs.map((tx) => [...new Set(catalog.changedUris(tx))]);
}

export function startChangeFeed(
  server: Server,
  onCommit: OnCommit,
  catalog: ResourceCatalog,
  delivery: Exclude<ChangeDelivery, 'none'>,
  subscribed: ReadonlySet<string>,
  log: Logger,
): Unsubscribe {
  return onCommit((txs) => {
    // Every commit lands here (the access log's too): a 2025-era connection that subscribed to
    // nothing has nothing to be told, so it pays nothing per commit.
    if (delivery === 'subscribed' && subscribed.size === 0) return;
    const uris = changedUrisOf(catalog, txs)
      .flat()
      .filter((uri) => delivery === 'all' || subscribed.has(uri));
    if (uris.length === 0) return;
    // Next macrotask: the committing calls' responses (resolved in this tick) go out first.
    setImmediate(() => {
      for (const uri of uris) {
        server.sendResourceUpdated({ uri }).catch((error: unknown) => log.debug({ err: error, uri }, 'resource update not delivered'));
      }
    });
  });
}
