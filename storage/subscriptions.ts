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

  /** Deliver one durable transaction's changes to every matching subscription. */
  publish(offset: number, net: readonly { table: string; keyChanges: readonly KeyChange[] }[]): void {
    if (this.count === 0) return;
    for (const { table, keyChanges } of net) {
      const t = this.tables.get(table);
      if (!t) continue;
      const perSub = new Map<Subscription, RowChange[]>();
      for (const change of keyChanges) {
        for (const sub of this.candidates(t, change)) {
          const event = classify(sub.spec.predicate, change);
          if (!event) continue;
          let list = perSub.get(sub);
          if (!list) perSub.set(sub, (list = []));
          list.push(event);
        }
      }
      for (const [sub, events] of perSub) {
        try {
          sub.listener(offset, events);
        } catch {
          // A subscriber's bug must not break delivery to the others or the commit path.
        }
      }
    }
  }

  private *candidates(t: TableSubs, change: KeyChange): Iterable<Subscription> {
    yield* t.general;
    for (const [column, byValue] of t.byEquals) {
      const seen = new Set<string>();
      for (const row of [change.old, change.row]) {
        if (!row) continue;
        const k = encodeKey([row[column] ?? null]);
        if (seen.has(k)) continue;
        seen.add(k);
        const bucket = byValue.get(k);
        if (bucket) yield* bucket;
      }
    }
  }
}

/** How one key's change looks through a predicate: moved in = insert, out = delete, stayed = update. */
export function classify(predicate: (row: Row) => boolean, change: Pick<KeyChange, 'old' | 'row'>): RowChange | undefined {
  const before = change.old !== undefined && predicate(change.old);
  const after = change.row !== undefined && predicate(change.row);
  if (before && after) return { kind: 'update', oldRow: change.old!, row: change.row! };
  if (after) return { kind: 'insert', row: change.row! };
  if (before) return { kind: 'delete', oldRow: change.old! };
  return undefined;
}
