/**
 * A connection's row events not yet sent, in arrival order, taken at flush as one group per
 * transaction, in offset order. Events arrive in offset order except when a subscribe goes
 * live (its buffered, older events come behind newer ones): only then is the list sorted.
 * A flat list of small records rather than a map per transaction: this sits on the fan-out
 * path, once per delivery, where a Map per delivery was the largest allocation.
 */
import type { RowChange } from '../../storage/changes.js';
import type { TableSchema } from '../../storage/schema.js';
import { appendChanges, queryChanges, type QueryChanges } from './tx-message.js';

/** What the list needs of a live query: its id, its table, and whether it ended meanwhile. */
export interface PendingQuery {
  readonly id: string;
  readonly ended: boolean;
  readonly compiled: { readonly schema: TableSchema };
}

interface PendingEvent {
  readonly offset: number;
  readonly query: PendingQuery;
  readonly events: readonly RowChange[];
}

export class PendingEvents {
  private list: PendingEvent[] = [];
  private inOrder = true;

  get size(): number {
    return this.list.length;
  }

  add(query: PendingQuery, offset: number, events: readonly RowChange[]): void {
    const last = this.list[this.list.length - 1];
    if (last !== undefined && offset < last.offset) this.inOrder = false;
    this.list.push({ offset, query, events });
  }

  clear(): void {
    this.list = [];
    this.inOrder = true;
  }

  /**
   * Empties the list up to `throughOffset` (all of it by default), calling `send` once per
   * transaction, in offset order, with the queries it changed (queries ended since are left
   * out); stops early when `send` returns false. Later transactions stay for the next take.
   */
  take(send: (offset: number, queries: readonly QueryChanges[]) => boolean, throughOffset = Number.MAX_SAFE_INTEGER): void {
    let list = this.list;
    // Stable: a query's events of one transaction keep their arrival order.
    if (!this.inOrder) list.sort((a, b) => a.offset - b.offset);
    this.clear();
    // Sorted now: the usual flush (all of it) need not walk the list to find that nothing is later.
    const later = list.length === 0 || list[list.length - 1]!.offset <= throughOffset ? -1 : list.findIndex((event) => event.offset > throughOffset);
    if (later >= 0) {
      this.list = list.slice(later);
      list = list.slice(0, later);
    }
    for (let i = 0; i < list.length; ) {
      const offset = list[i]!.offset;
      let end = i + 1;
      while (end < list.length && list[end]!.offset === offset) end++;
      const queries = queriesOf(list, i, end);
      i = end;
      if (queries.length > 0 && !send(offset, queries)) return;
    }
  }
}

/** One transaction's events per query; a query reached twice (not expected) gets one entry. */
function queriesOf(list: readonly PendingEvent[], from: number, to: number): QueryChanges[] {
  const queries: QueryChanges[] = [];
  const byQuery = to - from > 1 ? new Map<PendingQuery, QueryChanges>() : undefined;
  for (let i = from; i < to; i++) {
    const { query, events } = list[i]!;
    if (query.ended) continue;
    const seen = byQuery?.get(query);
    if (seen) {
      appendChanges(seen, events);
      continue;
    }
    const changes = queryChanges(query.id, query.compiled.schema, events);
    byQuery?.set(query, changes);
    queries.push(changes);
  }
  return queries;
}
