/**
 * The fan-out path's parts, each on its promise: the hub finds the subscriptions a change can
 * reach without testing the others and tells each one what it saw; a connection's pending
 * events leave as one message per transaction in offset order; a tx message is the JSON (or
 * msgpack) the protocol documents, whatever the rows hold.
 */
import { Unpackr } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import type { RowChange } from '../../storage/changes.js';
import type { Row, TableSchema } from '../../storage/schema.js';
import { SubscriptionHub } from '../../storage/subscriptions.js';
import type { KeyChange } from '../../storage/transaction.js';
import { PendingEvents, type PendingQuery } from '../../server/ws/pending-events.js';
import { encodeTxMessage, queryChanges, type QueryChanges } from '../../server/ws/tx-message.js';

const schema: TableSchema = {
  name: 'objects',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'string' },
    { name: 'type', type: 'string' },
    { name: 'n', type: 'int' },
  ],
};

const change = (old: Row | undefined, row: Row | undefined): KeyChange => ({ key: String((row ?? old)!.id), old, row });

describe('subscription hub', () => {
  test('one change among 10,000 equality subscriptions tests only the one it can match', () => {
    const hub = new SubscriptionHub();
    let tested = 0;
    const got: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const type = `solo-${i}`;
      hub.subscribe(
        { table: 'objects', predicate: (row) => (tested++, row.type === type), equals: { column: 'type', value: type } },
        (offset, events) => got.push(`${type}@${offset}:${events.map((e) => e.kind).join(',')}`),
      );
    }
    hub.publish(7, [{ table: 'objects', keyChanges: [change(undefined, { id: 'a', type: 'solo-4242', n: 1 })] }]);
    expect(got).toEqual(['solo-4242@7:insert']);
    // The row's new value picks one bucket; a predicate is tested on the old and the new row at most.
    expect(tested).toBeLessThanOrEqual(2);
  });

  test('a row moving between equality buckets leaves the old one as a delete and enters the new one as an insert', () => {
    const hub = new SubscriptionHub();
    const got: string[] = [];
    for (const type of ['red', 'blue', 'green']) {
      hub.subscribe({ table: 'objects', predicate: (row) => row.type === type, equals: { column: 'type', value: type } }, (_offset, events) => {
        for (const e of events) got.push(`${type}:${e.kind}`);
      });
    }
    hub.publish(1, [{ table: 'objects', keyChanges: [change({ id: 'a', type: 'red', n: 1 }, { id: 'a', type: 'blue', n: 1 })] }]);
    expect(got.sort()).toEqual(['blue:insert', 'red:delete']);
  });

  test('a transaction touching several rows reaches each subscription once, with every row it sees, in order', () => {
    const hub = new SubscriptionHub();
    const calls: { who: string; events: readonly RowChange[] }[] = [];
    hub.subscribe({ table: 'objects', predicate: (row) => (row.n as number) >= 10 }, (_o, events) => calls.push({ who: 'big', events }));
    hub.subscribe({ table: 'objects', predicate: (row) => row.type === 't', equals: { column: 'type', value: 't' } }, (_o, events) => calls.push({ who: 't', events }));
    hub.publish(3, [
      {
        table: 'objects',
        keyChanges: [
          change(undefined, { id: 'a', type: 't', n: 1 }), // t: insert; big: not seen
          change({ id: 'b', type: 't', n: 5 }, { id: 'b', type: 't', n: 50 }), // t: update; big: moves in
          change({ id: 'c', type: 'u', n: 99 }, undefined), // big: delete
        ],
      },
    ]);
    const byWho = Object.fromEntries(calls.map((c) => [c.who, c.events.map((e) => `${e.kind}:${(('row' in e ? e.row : e.oldRow) as Row).id}`)]));
    expect(calls).toHaveLength(2);
    expect(byWho).toEqual({ t: ['insert:a', 'update:b'], big: ['insert:b', 'delete:c'] });
  });

  test('subscriptions that see a change alike share one event list; a listener that throws does not stop the others', () => {
    const hub = new SubscriptionHub();
    const lists: (readonly RowChange[])[] = [];
    hub.subscribe({ table: 'objects', predicate: () => true }, () => {
      throw new Error('a subscriber bug');
    });
    for (let i = 0; i < 3; i++) hub.subscribe({ table: 'objects', predicate: () => true }, (_o, events) => lists.push(events));
    hub.publish(0, [{ table: 'objects', keyChanges: [change(undefined, { id: 'a', type: 't', n: 1 })] }]);
    expect(lists).toHaveLength(3);
    expect(lists[1]).toBe(lists[0]);
    expect(lists[2]).toBe(lists[0]);
  });
});

describe('pending events', () => {
  const query = (id: string): PendingQuery & { ended: boolean } => ({ id, ended: false, compiled: { schema } });
  const insert = (id: string): readonly RowChange[] => [{ kind: 'insert', row: { id, type: 't', n: 0 } }];
  const take = (pending: PendingEvents): string[] => {
    const out: string[] = [];
    pending.take((offset, queries) => {
      out.push(`${offset}:${queries.map((q) => `${q.id}=${q.events.map((e) => (e.kind === 'delete' ? e.oldRow : e.row).id).join('+')}`).join(',')}`);
      return true;
    });
    return out;
  };

  test('one group per transaction in offset order, even when older events arrive later (a subscribe going live)', () => {
    const pending = new PendingEvents();
    const live = query('live');
    const starting = query('starting');
    pending.add(live, 5, insert('a'));
    pending.add(live, 6, insert('b'));
    pending.add(starting, 4, insert('x')); // buffered while starting, released now
    pending.add(starting, 6, insert('y'));
    expect(take(pending)).toEqual(['4:starting=x', '5:live=a', '6:live=b,starting=y']);
    expect(pending.size).toBe(0);
  });

  test('a query that ended before the flush is left out; a query reached twice in one transaction is one entry', () => {
    const pending = new PendingEvents();
    const ended = query('gone');
    const twice = query('q');
    pending.add(ended, 1, insert('a'));
    pending.add(twice, 1, insert('b'));
    pending.add(twice, 1, insert('c'));
    pending.add(ended, 2, insert('d'));
    ended.ended = true;
    expect(take(pending)).toEqual(['1:q=b+c']);
  });

  test('take stops when a send is refused (the connection was cut off)', () => {
    const pending = new PendingEvents();
    const q = query('q');
    for (let offset = 0; offset < 5; offset++) pending.add(q, offset, insert(`r${offset}`));
    const sent: number[] = [];
    pending.take((offset) => (sent.push(offset), offset < 2));
    expect(sent).toEqual([0, 1, 2]);
    expect(pending.size).toBe(0);
  });
});

describe('tx message', () => {
  const rows: Row[] = [
    { id: 'a', type: 'näive "quoted" \u2028 ✓ 😀', n: 1 },
    { id: 'b', type: 't', n: 2 },
    { id: 'c', type: 't', n: 3 },
  ];
  const queries = (): QueryChanges[] => [
    queryChanges('q.1', schema, [{ kind: 'insert', row: rows[0]! }, { kind: 'update', oldRow: rows[1]!, row: { ...rows[1]!, n: 20 } }]),
    queryChanges('q:2', schema, [{ kind: 'delete', oldRow: rows[2]! }]),
  ];
  const expected = {
    type: 'tx',
    offset: 12,
    queries: [
      { id: 'q.1', inserted: [rows[0]], updated: [{ ...rows[1], n: 20 }] },
      { id: 'q:2', deleted: [rows[2]] },
    ],
  };

  test('JSON: UTF-8 text of the documented shape, whatever the strings hold; empty lists left out', () => {
    const data = encodeTxMessage('json', 12, queries());
    const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    expect(text.startsWith('{"type":"tx","offset":12,')).toBe(true); // clients may read the head alone
    expect(JSON.parse(text)).toEqual(expected);
    // The same shared list encoded again (another subscriber) gives the same bytes.
    expect(Buffer.compare(encodeTxMessage('json', 12, queries()), data)).toBe(0);
  });

  test('msgpack: the same message as plain maps', () => {
    const data = encodeTxMessage('msgpack', 12, queries());
    expect(new Unpackr({ mapsAsObjects: true, useRecords: false }).unpack(data)).toEqual(expected);
  });
});
