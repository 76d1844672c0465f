/**
 * Subscriptions hub: table + row predicate -> row events per durable transaction. A row that
 * moves into the predicate arrives as an insert, out of it as a delete. Subscriptions that
 * name an equality key (column = value) are found through a map, so a transaction touching
 * one row does not test every subscription of the table.
 */
import type { RowChange } from './changes.js';
import { encodeKey } from './key-codec.js';
import type { Row, Value } from './schema.js';
import type { KeyChange } from './transaction.js';

export interface SubscriptionSpec {
  readonly table: string;
  readonly predicate: (row: Row) => boolean;
  /** Optional: the predicate implies row[column] === value; used to index the subscription. */
  readonly equals?: { readonly column: string; readonly value: Value };
}

export type SubscriptionListener = (offset: number, changes: readonly RowChange[]) => void;

/** Subscriptions per hub; past it subscribe fails (bounded everything). */
export const subscriptionsMax = 100_000;

interface Subscription {
  readonly spec: SubscriptionSpec;
  readonly listener: SubscriptionListener;
}

interface TableSubs {
  readonly general: Set<Subscription>;
  /** column -> encoded value -> subscriptions */
  readonly byEquals: Map<string, Map<string, Set<Subscription>>>;
}

export class SubscriptionHub {
  private readonly tables = new Map<string, TableSubs>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  subscribe(spec: SubscriptionSpec, listener: SubscriptionListener): () => void {
    if (this.count >= subscriptionsMax) throw new Error(`at most ${subscriptionsMax} subscriptions per store`);
    const sub: Subscription = { spec, listener };
    let t = this.tables.get(spec.table);
    if (!t) {
      t = { general: new Set(), byEquals: new Map() };
      this.tables.set(spec.table, t);
    }
    let bucket: Set<Subscription>;
    if (spec.equals) {
      let byValue = t.byEquals.get(spec.equals.column);
      if (!byValue) t.byEquals.set(spec.equals.column, (byValue = new Map()));
      const k = encodeKey([spec.equals.value]);
      bucket = byValue.get(k) ?? new Set();
      byValue.set(k, bucket);
    } else {
      bucket = t.general;
    }
    bucket.add(sub);
    this.count++;
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      bucket.delete(sub);
      this.count--;
    };
  }

  /**
   * Deliver one durable transaction's changes to every matching subscription. Runs in the
   * commit's acknowledgement path, so its work is O(matching subscriptions) and allocates
   * little: the event lists are made once per change and shared by every subscription that
   * sees the change the same way (listeners must not mutate them; they are readonly).
   */
  publish(offset: number, net: readonly { table: string; keyChanges: readonly KeyChange[] }[]): void {
    if (this.count === 0) return;
    for (const { table, keyChanges } of net) {
      const t = this.tables.get(table);
      if (!t) continue;
      if (keyChanges.length === 1) {
        // One row changed: each candidate is reached once (one bucket per equality), no grouping.
        const events = new SharedEvents(keyChanges[0]!);
        this.forEachCandidate(t, events.change, (sub) => {
          const list = events.listFor(sub.spec.predicate);
          if (list) deliver(sub, offset, list);
        });
        continue;
      }
      const perSub = new Map<Subscription, RowChange[]>();
      for (const change of keyChanges) {
        const events = new SharedEvents(change);
        this.forEachCandidate(t, change, (sub) => {
          const list = events.listFor(sub.spec.predicate);
          if (!list) return;
          const into = perSub.get(sub);
          if (into) into.push(list[0]!);
          else perSub.set(sub, [list[0]!]);
        });
      }
      for (const [sub, events] of perSub) deliver(sub, offset, events);
    }
  }

  /** Every subscription that may match the change: the table's general ones, then the equality buckets of its old and new values. */
  private forEachCandidate(t: TableSubs, change: KeyChange, visit: (sub: Subscription) => void): void {
    for (const sub of t.general) visit(sub);
    for (const [column, byValue] of t.byEquals) {
      const oldKey = change.old ? encodeKey([change.old[column] ?? null]) : undefined;
      const newKey = change.row ? encodeKey([change.row[column] ?? null]) : undefined;
      if (oldKey !== undefined) byValue.get(oldKey)?.forEach(visit);
      // A subscription sits in one bucket: the same value twice would reach it twice.
      if (newKey !== undefined && newKey !== oldKey) byValue.get(newKey)?.forEach(visit);
    }
  }
}

function deliver(sub: Subscription, offset: number, events: readonly RowChange[]): void {
  try {
    sub.listener(offset, events);
  } catch {
    // A subscriber's bug must not break delivery to the others or the commit path.
  }
}

/** One key's change and its three possible one-event lists, each made on first use. */
class SharedEvents {
  private inserted: readonly RowChange[] | undefined;
  private updated: readonly RowChange[] | undefined;
  private deleted: readonly RowChange[] | undefined;

  constructor(readonly change: KeyChange) {}

  /** The change as this predicate sees it (see seenAs), or undefined when it does not see it. */
  listFor(predicate: (row: Row) => boolean): readonly RowChange[] | undefined {
    const kind = seenAs(predicate, this.change);
    if (kind === undefined) return undefined;
    if (kind === 'update') return (this.updated ??= [classified(kind, this.change)]);
    if (kind === 'insert') return (this.inserted ??= [classified(kind, this.change)]);
    return (this.deleted ??= [classified(kind, this.change)]);
  }
}

/** How one key's change looks through a predicate: moved in = insert, out = delete, stayed = update. */
export function seenAs(predicate: (row: Row) => boolean, change: Pick<KeyChange, 'old' | 'row'>): RowChange['kind'] | undefined {
  const before = change.old !== undefined && predicate(change.old);
  const after = change.row !== undefined && predicate(change.row);
  if (before && after) return 'update';
  if (after) return 'insert';
  if (before) return 'delete';
  return undefined;
}

/** The event for a change seen as `kind` (its rows are there: seenAs tested them). */
function classified(kind: RowChange['kind'], change: Pick<KeyChange, 'old' | 'row'>): RowChange {
  if (kind === 'update') return { kind, oldRow: change.old!, row: change.row! };
  if (kind === 'insert') return { kind, row: change.row! };
  return { kind, oldRow: change.old! };
}

/** The change as one event through a predicate (seenAs), or undefined when the predicate does not see it. */
export function classify(predicate: (row: Row) => boolean, change: Pick<KeyChange, 'old' | 'row'>): RowChange | undefined {
  const kind = seenAs(predicate, change);
  return kind === undefined ? undefined : classified(kind, change);
}
