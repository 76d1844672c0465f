import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { rowOverheadBytes } from '../../storage/memory-estimate.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-store-'));
const open = (dir: string) => Store.open({ dir, module: counterModule });

describe('store', () => {
  test('an acknowledged call is readable and survives reopen with the same hash', async () => {
    const dir = tmp();
    const store = await open(dir);
    const r = await store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    expect(r.offset).toBe(0);
    await store.call('put', { id: 'b', type: 't', n: 2 }, testCaller);
    const rows = await store.read((v) => [...v.table('objects').scan()].map((x) => x.id));
    expect(rows).toEqual(['a', 'b']);
    const hash = store.stateHash();
    await store.close();
    const again = await open(dir);
    expect(again.lastOffset).toBe(1);
    expect(again.stateHash()).toBe(hash);
    expect(again.report.checkpointVerified).toBe(true);
    await again.close();
  });

  test('a clock stepped back never stamps a transaction before the one it follows, across a reopen too', async () => {
    const dir = tmp();
    let nowMs = 1_000_000;
    const clock = () => nowMs;
    const stamped = async (store: Store, id: string) => (await store.readTx((await store.call('put', { id, type: 't', n: 1 }, testCaller)).offset))!.invocation.timestampMs;
    const store = await Store.open({ dir, module: counterModule, clock });
    expect(await stamped(store, 'a')).toBe(1_000_000);
    nowMs = 400_000; // stepped back
    expect(await stamped(store, 'b')).toBe(1_000_000);
    await store.close();
    const again = await Store.open({ dir, module: counterModule, clock });
    expect(await stamped(again, 'c')).toBe(1_000_000);
    nowMs = 1_000_500; // past it again: the clock's own time
    expect(await stamped(again, 'd')).toBe(1_000_500);
    await again.close();
  });

  test('a reducer that throws leaves no trace in memory or in the log', async () => {
    const dir = tmp();
    const store = await open(dir);
    await store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    const before = store.stateHash();
    await expect(store.call('put_then_fail', { id: 'x' }, testCaller)).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(store.stateHash()).toBe(before);
    expect(store.lastOffset).toBe(0);
    await expect(store.call('put', { id: 7 }, testCaller)).rejects.toMatchObject({ code: 'invalid_argument' });
    const r = await store.call('put', { id: 'b', type: 't', n: 1 }, testCaller);
    expect(r.offset).toBe(1);
    await store.close();
  });

  test('concurrent calls are acknowledged in offset order', async () => {
    const store = await open(tmp());
    const acks: number[] = [];
    await Promise.all(Array.from({ length: 500 }, (_, i) =>
      store.call('bump', { id: `c${i % 7}`, by: 1 }, testCaller).then((r) => acks.push(r.offset))));
    expect(acks).toEqual([...acks].sort((a, b) => a - b));
    expect(acks.length).toBe(500);
    await store.close();
  });

  test('idempotency key: a retried call returns the first result and writes nothing', async () => {
    const dir = tmp();
    const store = await open(dir);
    const first = await store.call('bump', { id: 'k', by: 5 }, testCaller, { idempotencyKey: 'req-1' });
    const again = await store.call('bump', { id: 'k', by: 5 }, testCaller, { idempotencyKey: 'req-1' });
    expect(again).toEqual({ ...first, replayed: true });
    expect(store.lastOffset).toBe(first.offset);
    await store.close();
    const reopened = await open(dir);
    const third = await reopened.call('bump', { id: 'k', by: 5 }, testCaller, { idempotencyKey: 'req-1' });
    expect(third.replayed).toBe(true);
    expect(await reopened.read((v) => v.table('objects').get(['k'])?.n)).toBe(5);
    await reopened.close();
  });

  test('idempotency key: a retry whose arguments hold -0 replays (the frame keeps no -0), other arguments are a conflict', async () => {
    const store = await open(tmp());
    const first = await store.call('bump', { id: 'z', by: -0 }, testCaller, { idempotencyKey: 'neg-zero' });
    expect(await store.call('bump', { id: 'z', by: -0 }, testCaller, { idempotencyKey: 'neg-zero' })).toEqual({ ...first, replayed: true });
    await expect(store.call('bump', { id: 'z', by: 1 }, testCaller, { idempotencyKey: 'neg-zero' })).rejects.toMatchObject({ code: 'conflict' });
    expect(store.lastOffset).toBe(first.offset);
    await store.close();
  });

  test('snapshot then reopen: state loads from the snapshot and later frames replay', async () => {
    const dir = tmp();
    const store = await open(dir);
    for (let i = 0; i < 50; i++) await store.call('put', { id: `o${i}`, type: i % 2 ? 'odd' : 'even', n: i }, testCaller);
    const snap = await store.snapshot();
    expect(snap.offset).toBe(49);
    for (let i = 0; i < 10; i++) await store.call('bump', { id: `o${i}`, by: 100 }, testCaller);
    const hash = store.stateHash();
    await store.close();
    const again = await open(dir);
    expect(again.report.snapshotOffset).toBe(49);
    expect(again.report.replayedFrames).toBe(10);
    expect(again.stateHash()).toBe(hash);
    const odd = await again.read((v) => [...v.table('objects').scan({ index: 'by_type', prefix: ['odd'] })].length);
    expect(odd).toBe(25);
    await again.close();
  });

  test('subscribers see a row move into and out of their predicate, after durability', async () => {
    const store = await open(tmp());
    const events: string[] = [];
    store.subscribe('objects', (r) => (r.n as number) >= 10, (offset, changes) => {
      expect(store.durableOffset).toBeGreaterThanOrEqual(offset);
      for (const c of changes) events.push(`${offset}:${c.kind}`);
    });
    await store.call('put', { id: 'a', type: 't', n: 1 }, testCaller); // not matching
    await store.call('bump', { id: 'a', by: 20 }, testCaller); // moves in
    await store.call('bump', { id: 'a', by: 1 }, testCaller); // update
    await store.call('bump', { id: 'a', by: -30 }, testCaller); // moves out
    expect(events).toEqual(['1:insert', '2:update', '3:delete']);
    await store.close();
  });

  test('a second open of the same directory is refused while the first holds it', async () => {
    const dir = tmp();
    const store = await open(dir);
    await expect(open(dir)).rejects.toMatchObject({ code: 'conflict' });
    await store.close();
  });
});

describe('keys and pages', () => {
  test('integer keys never collide and order numerically, negatives first', async () => {
    const { encodeKey } = await import('../../storage/key-codec.js');
    const values = [-(2 ** 53 - 1), -5, -1, 0, 1, 2, 3, 4, 255, 256, 2 ** 40 + 1, 2 ** 53 - 1];
    const keys = values.map((v) => encodeKey(['h', v]));
    expect(new Set(keys).size).toBe(values.length);
    expect([...keys].sort()).toEqual(keys);
  });

  test('page returns nextKey while more rows follow, and paging visits every row once', async () => {
    const store = await open(tmp());
    for (let i = 0; i < 25; i++) await store.call('put', { id: `p${String(i).padStart(2, '0')}`, type: 't', n: i }, testCaller);
    const seen: string[] = [];
    let afterKey: string | undefined;
    for (;;) {
      const page = await store.read((v) => v.table('objects').page({ limit: 10, ...(afterKey ? { afterKey } : {}) }));
      seen.push(...page.rows.map((r) => r.id as string));
      if (!page.nextKey) break;
      afterKey = page.nextKey;
    }
    expect(seen.length).toBe(25);
    expect(new Set(seen).size).toBe(25);
    await store.close();
  });

  test('readTx reads frames of the active segment', async () => {
    const store = await open(tmp());
    const r = await store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    const tx = await store.readTx(r.offset);
    expect(tx?.invocation.reducer).toBe('put');
    expect(tx?.changes[0]?.inserts[0]?.id).toBe('a');
    await store.close();
  });
});

describe('tenant row bytes limit', () => {
  const openLimited = (dir: string, liveRowBytesMax: number) => Store.open({ dir, module: counterModule, liveRowBytesMax });
  const logBytes = (store: Store) => store.logSources().reduce((sum, s) => sum + s.bytes, 0);
  const note = (n: number) => ({ text: 'x'.repeat(n) });

  test('a transaction that would take the tenant over its limit is refused and changes nothing', async () => {
    const store = await openLimited(tmp(), 4096);
    await store.call('put', { id: 'a', type: 't', n: 1, attributes: note(1000) }, testCaller);
    const hash = store.stateHash();
    const [offset, bytes, live] = [store.lastOffset, logBytes(store), store.liveRowBytes()];
    const refused = store.call('put', { id: 'b', type: 't', n: 2, attributes: note(4000) }, testCaller);
    await expect(refused).rejects.toMatchObject({ code: 'limit_exceeded', hint: expect.stringContaining('IOBOXX_TENANT_ROW_BYTES_MAX') });
    await expect(refused).rejects.toThrow(/limit of 4096/);
    expect(store.stateHash()).toBe(hash);
    expect(store.lastOffset).toBe(offset);
    expect(store.liveRowBytes()).toBe(live);
    await store.call('put', { id: 'c', type: 't', n: 3, attributes: note(100) }, testCaller); // growth within the limit still passes
    expect(store.lastOffset).toBe(offset + 1);
    expect(logBytes(store)).toBeGreaterThan(bytes);
    await store.close();
  });

  test('a reducer marked passesRowLimit (its table bounds itself, as the access log does) still commits at the limit', async () => {
    const put = counterModule.reducers.find((r) => r.name === 'put')!;
    const module = { tables: counterModule.tables, reducers: [...counterModule.reducers, { ...put, name: 'put_audit', passesRowLimit: true }] };
    const store = await Store.open({ dir: tmp(), module, liveRowBytesMax: 4096 });
    await store.call('put', { id: 'a', type: 't', n: 1, attributes: note(3500) }, testCaller);
    await expect(store.call('put', { id: 'b', type: 't', n: 2, attributes: note(1000) }, testCaller)).rejects.toMatchObject({ code: 'limit_exceeded' });
    const passed = await store.call('put_audit', { id: 'b', type: 't', n: 2, attributes: note(1000) }, testCaller);
    expect(passed.offset).toBe(1);
    expect(store.liveRowBytes()).toBeGreaterThan(4096);
    await store.close();
  });

  test('a store above a lowered limit still opens, with every row, and refuses only growth', async () => {
    const dir = tmp();
    const store = await openLimited(dir, 1 << 20);
    for (let i = 0; i < 8; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: note(1000) }, testCaller);
    const hash = store.stateHash();
    const live = store.liveRowBytes();
    await store.close();
    const lowered = await openLimited(dir, 2000);
    expect(lowered.stateHash()).toBe(hash);
    expect(lowered.liveRowBytes()).toBe(live);
    await expect(lowered.call('put', { id: 'new', type: 't', n: 0 }, testCaller)).rejects.toMatchObject({ code: 'limit_exceeded' });
    await expect(lowered.call('put', { id: 'o0', type: 't', n: 0, attributes: note(2000) }, testCaller)).rejects.toMatchObject({ code: 'limit_exceeded' });
    // Deletes, shrinking and level updates are always allowed.
    await lowered.call('del', { id: 'o1' }, testCaller);
    await lowered.call('put', { id: 'o2', type: 't', n: 2, attributes: note(10) }, testCaller);
    await lowered.call('bump', { id: 'o3', by: 1 }, testCaller);
    expect(lowered.liveRowBytes()).toBeLessThan(live);
    await lowered.close();
  });

  test('the memory estimate is the row bytes held (live, dead, spare) plus rowOverheadBytes per row', async () => {
    const store = await openLimited(tmp(), 1 << 20);
    for (let i = 0; i < 8; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: note(100) }, testCaller);
    await store.call('del', { id: 'o1' }, testCaller); // leaves dead bytes
    const { live, dead, spare } = store.rowBytes();
    const rows = Object.values(store.tableCounts()).reduce((sum, n) => sum + n, 0);
    expect(dead).toBeGreaterThan(0);
    expect(store.memoryBytesEstimate()).toBe(live + dead + spare + rows * rowOverheadBytes);
    await store.close();
  });
});
