/**
 * When a Keycloak event is newer than what a tenant's kc_* projection already holds, whatever
 * the order events arrive in (Keycloak redelivers, webhooks reorder, a user's events reach a
 * tenant late). Every event has a stamp: its Keycloak time, then its order key (`id:` its id or
 * uid; an event without one, `sha256:` of its normalised JSON), compared in that order, so two
 * events never tie unless they are the same event (see eventStamp for an event without a time). Each projected thing keeps the stamp of the
 * newest event applied to it, and an event is applied to it only when newer:
 *
 *  - kc_versions: the newest write per thing: a user's row [user, 'user', '', ''], each of its
 *    profile fields [user, 'user', '', FIELD] (events change some fields only: an older
 *    UPDATE_EMAIL arriving after a newer VERIFY_EMAIL still sets the email), a membership
 *    [user, 'group'|'organization', SCOPE, ''], a role grant [user, 'role', CLIENT, ROLE].
 *  - kc_deletions: the newest deletion per thing, so an older write arriving later does not bring
 *    it back. A user's deletion also covers all of the user's fields, memberships and grants.
 *  - kc_horizon: deletions are bounded (kcDeletionsMax per tenant, none older than
 *    kcDeletionAgeMsMax: kc-bounds.ts): past that the oldest are forgotten, and an event not newer than the newest forgotten one is refused (it could bring
 *    back something deleted), never applied.
 *
 * Stores written before these tables (no stamps) have rows with no version: any event is newer.
 */
import { createHash } from 'node:crypto';
import { MemoryError } from '../storage/errors.js';
import { normaliseJson } from '../storage/json-normal.js';
import type { ReducerContext } from '../storage/reducer.js';
import { assertRoomFor, kcDeletionsAgedOutPerEventMax, kcVersionsMax, type KcBounds } from './kc-bounds.js';
import type { Row, TableSchema } from '../storage/schema.js';

/** An order key longer than this (an odd id) is kept as its SHA-256. */
const orderKeyCharsMax = 128;
/** Bound of the text of an id-less event hashed for its order key (the webhook takes 256 KiB bodies). */
const hashedEventCharsMax = 1024 * 1024;

export interface EventStamp {
  readonly timeMs: number;
  readonly key: string;
}

/** What a stamp belongs to: [user_id, entity, scope, name] (see the file comment). */
export type KcThing = readonly [user: string, entity: 'user' | 'group' | 'organization' | 'role', scope: string, name: string];

const thingColumns = [
  { name: 'user_id', type: 'string' },
  { name: 'entity', type: 'string' },
  { name: 'scope', type: 'string' },
  { name: 'name', type: 'string' },
  { name: 'event_time_ms', type: 'int' },
  { name: 'event_key', type: 'string' },
] as const;

export const kcVersionsTable: TableSchema = {
  name: 'kc_versions',
  columns: [...thingColumns],
  primaryKey: ['user_id', 'entity', 'scope', 'name'],
  rowsMax: kcVersionsMax,
};

export const kcDeletionsTable: TableSchema = {
  name: 'kc_deletions',
  columns: [...thingColumns],
  primaryKey: ['user_id', 'entity', 'scope', 'name'],
  // Oldest first: what is forgotten past kcDeletionsMax.
  indexes: [{ name: 'kc_deletions_by_stamp', columns: ['event_time_ms', 'event_key'] }],
};

/** One row (`id` 'deletions'): the stamp of the newest deletion forgotten, and how many were. */
export const kcHorizonTable: TableSchema = {
  name: 'kc_horizon',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'event_time_ms', type: 'int' },
    { name: 'event_key', type: 'string' },
    { name: 'forgotten', type: 'int' },
  ],
  primaryKey: ['id'],
};

export const kcClockTables = [kcVersionsTable, kcDeletionsTable, kcHorizonTable];

/**
 * The event's stamp. An event without a usable time (only a direct call can carry one: the
 * webhook refuses it) is taken as of the applying transaction: its time, and its offset as the
 * order key ('~' sorts after the other keys), so such events take effect in the order applied.
 */
export function eventStamp(ctx: ReducerContext, event: Record<string, unknown>): EventStamp {
  const time = event['time'];
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) {
    return { timeMs: ctx.timestampMs, key: `~tx:${String(ctx.offset).padStart(20, '0')}` };
  }
  const timeMs = time;
  const id = typeof event['id'] === 'string' && event['id'] ? event['id'] : typeof event['uid'] === 'string' && event['uid'] ? event['uid'] : undefined;
  if (id !== undefined && id.length <= orderKeyCharsMax) return { timeMs, key: `id:${id}` };
  const text = id ?? JSON.stringify(normaliseJson('Keycloak event', event, hashedEventCharsMax));
  return { timeMs, key: `sha256:${createHash('sha256').update(text).digest('hex')}` };
}

/** Whether `a` is newer than `b` (time, then order key); anything is newer than nothing. */
export function newer(a: EventStamp, b: EventStamp | undefined): boolean {
  if (b === undefined) return true;
  return a.timeMs !== b.timeMs ? a.timeMs > b.timeMs : a.key > b.key;
}

export function describeStamp(stamp: EventStamp): string {
  return `${stamp.timeMs} (${stamp.key})`;
}

/** The stamp a kc_versions, kc_deletions or kc_horizon row holds. */
export function stampOfRow(row: Row): EventStamp {
  return { timeMs: row['event_time_ms'] as number, key: row['event_key'] as string };
}

function stampOf(row: Row | undefined): EventStamp | undefined {
  return row ? stampOfRow(row) : undefined;
}

function thingRow(thing: KcThing, stamp: EventStamp): Record<string, unknown> {
  return { user_id: thing[0], entity: thing[1], scope: thing[2], name: thing[3], event_time_ms: stamp.timeMs, event_key: stamp.key };
}

export const userThing = (userId: string): KcThing => [userId, 'user', '', ''];

/** The stamps of one transaction: reads and writes kc_versions, kc_deletions and kc_horizon. */
export class KcClock {
  constructor(private readonly ctx: ReducerContext, private readonly bounds: KcBounds) {}

  version(thing: KcThing): EventStamp | undefined {
    return stampOf(this.ctx.table('kc_versions').get(thing));
  }

  deletion(thing: KcThing): EventStamp | undefined {
    return stampOf(this.ctx.table('kc_deletions').get(thing));
  }

  setVersion(thing: KcThing, stamp: EventStamp): void {
    const versions = this.ctx.table('kc_versions');
    assertRoomFor(versions, thing, this.bounds);
    versions.upsert(thingRow(thing, stamp));
  }

  forgetVersion(thing: KcThing): void {
    this.ctx.table('kc_versions').delete(thing);
  }

  forgetDeletion(thing: KcThing): void {
    this.ctx.table('kc_deletions').delete(thing);
  }

  /** Records a deletion, forgetting the oldest ones past deletionsMax (raising the horizon to them). */
  setDeletion(thing: KcThing, stamp: EventStamp): void {
    const deletions = this.ctx.table('kc_deletions');
    deletions.upsert(thingRow(thing, stamp));
    while (deletions.size > this.bounds.deletionsMax) {
      const [oldest] = [...deletions.scan({ index: 'kc_deletions_by_stamp', limit: 1 })];
      if (!oldest) throw new Error(`kc_deletions holds ${deletions.size} rows but its index none`);
      this.forgetOldestDeletion(oldest);
    }
  }

  /**
   * Forgets deletions older than deletionAgeMsMax, oldest first, at most
   * kcDeletionsAgedOutPerEventMax (raising the horizon to them). Their age is taken as of the event
   * applied (Keycloak's clock, which orders everything here) but never past this transaction's
   * time: an event dated far ahead cannot age out what is recent.
   */
  forgetAgedDeletions(asOf: EventStamp): void {
    const cutoffMs = Math.min(asOf.timeMs, this.ctx.timestampMs) - this.bounds.deletionAgeMsMax;
    const aged: Row[] = [];
    // Read lazily, oldest first: usually the first row is young enough and the only one decoded.
    for (const row of this.ctx.table('kc_deletions').scan({ index: 'kc_deletions_by_stamp', limit: kcDeletionsAgedOutPerEventMax })) {
      if ((row['event_time_ms'] as number) >= cutoffMs) break;
      aged.push(row);
    }
    for (const row of aged) this.forgetOldestDeletion(row);
  }

  private forgetOldestDeletion(oldest: Row): void {
    this.ctx.table('kc_deletions').delete([oldest['user_id'], oldest['entity'], oldest['scope'], oldest['name']] as KcThing);
    this.raiseHorizon(stampOf(oldest)!);
  }

  /** Things of `userId` holding a version or a deletion other than the user row and fields. */
  versionsOfUser(userId: string): Row[] {
    return [...this.ctx.table('kc_versions').scan({ prefix: [userId] })];
  }

  deletionsOfUser(userId: string): Row[] {
    return [...this.ctx.table('kc_deletions').scan({ prefix: [userId] })];
  }

  /**
   * Refuses an event not newer than the newest deletion forgotten: it could bring back a thing
   * whose deletion is no longer known. The projector marks it with this reason (projection_error).
   */
  assertPastHorizon(stamp: EventStamp): void {
    const row = this.ctx.table('kc_horizon').get(['deletions']);
    const horizon = stampOf(row);
    if (horizon === undefined || newer(stamp, horizon)) return;
    throw new MemoryError(
      'limit_exceeded',
      `Keycloak event at ${describeStamp(stamp)} is not newer than the deletion horizon ${describeStamp(horizon)}: `
        + `this tenant keeps its newest ${this.bounds.deletionsMax} deletions (kcDeletionsMax), none older than ${Math.round(this.bounds.deletionAgeMsMax / 86_400_000)} days (kcDeletionAgeMsMax), `
        + `and has forgotten ${row!['forgotten'] as number} older ones, so it cannot tell whether the event would bring back something deleted; it is not applied`,
      'an event this late is a redelivery of history: if its change is still wanted, make it again in Keycloak (a new event)',
    );
  }

  private raiseHorizon(stamp: EventStamp): void {
    const horizons = this.ctx.table('kc_horizon');
    const row = horizons.get(['deletions']);
    const current = stampOf(row);
    const top = newer(stamp, current) ? stamp : current!;
    horizons.upsert({ id: 'deletions', event_time_ms: top.timeMs, event_key: top.key, forgotten: ((row?.['forgotten'] as number | undefined) ?? 0) + 1 });
  }
}
