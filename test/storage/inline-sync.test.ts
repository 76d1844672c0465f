/**
 * The inline fdatasync (storage/log/inline-sync.ts): a lone small batch of an idle store syncs on
 * the writer's thread; everything else on the thread pool. Either way the log's rules hold.
 */
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { callerActive, callerClock, callerWindowMs, inlineSyncCallersMax, inlineSyncTxMax } from '../../storage/log/inline-sync.js';
import { Store, type BatchInfo, type StoreOptions } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-inline-sync-'));

/** A store on the faulty layer that records each durable batch. */
async function openRecorded(options: Partial<StoreOptions> = {}) {
  const dir = tmp();
  const fl = new FaultyFileLayer();
  const batches: BatchInfo[] = [];
  const store = await Store.open({ dir, module: counterModule, fileLayer: fl, onBatch: (b) => batches.push(b), ...options });
  return { dir, fl, store, batches };
}

const put = (store: Store, id: string, n = 0) => store.call('put', { id, type: 't', n }, testCaller);

async function reopenedIds(dir: string): Promise<string[]> {
  const reopened = await Store.open({ dir, module: counterModule });
  try {
    return await reopened.read((v) => [...v.table('objects').scan()].map((r) => String(r.id)).sort());
  } finally {
    await reopened.close();
  }
}

describe('inline fdatasync', () => {
  test('a sequential caller is acknowledged after inline fdatasyncs, in offset order, and every write survives reopen', async () => {
    const { dir, fl, store, batches } = await openRecorded();
    const ids = Array.from({ length: 20 }, (_, i) => `s${String(i).padStart(2, '0')}`);
    const offsets: number[] = [];
    for (const id of ids) {
      const { offset } = await put(store, id);
      expect(store.durableOffset).toBeGreaterThanOrEqual(offset); // acknowledged only once durable
      offsets.push(offset);
    }
    expect(offsets).toEqual(ids.map((_, i) => i));
    // The first batch of a store syncs on the pool (nothing proved the thread idle for it yet); then inline.
    expect(batches.map((b) => b.syncedInline)).toEqual([false, ...ids.slice(1).map(() => true)]);
    expect(fl.datasyncInlineCalls).toBe(ids.length - 1);
    await store.close();
    expect(await reopenedIds(dir)).toEqual(ids);
  });

  test('calls from concurrent callers (a batch above inlineSyncTxMax) sync on the pool', async () => {
    const { store, batches } = await openRecorded();
    await put(store, 'first');
    await put(store, 'second'); // inline: the store is idle
    const count = inlineSyncTxMax + 1;
    await Promise.all(Array.from({ length: count }, (_, i) => put(store, `c${i}`)));
    expect(batches.slice(-1)).toEqual([expect.objectContaining({ count, syncedInline: false })]);
    expect(batches.slice(0, 2).map((b) => b.syncedInline)).toEqual([false, true]);
    await store.close();
  });

  test('two stores of one thread writing in turn keep syncing on the pool', async () => {
    const a = await openRecorded();
    const b = await openRecorded();
    for (let i = 0; i < 5; i++) {
      await put(a.store, `a${i}`);
      await put(b.store, `b${i}`);
    }
    expect([...a.batches, ...b.batches].filter((x) => x.syncedInline)).toEqual([]);
    await a.store.close();
    await b.store.close();
    expect(await reopenedIds(a.dir)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
    expect(await reopenedIds(b.dir)).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);
  });

  test('while a snapshot is being written, a lone batch syncs on the pool', async () => {
    const { fl, store, batches } = await openRecorded();
    await put(store, 'a');
    await put(store, 'b');
    // Hold the snapshot at its first fdatasync: the snapshot stays in flight until released.
    let release = (): void => undefined;
    const snapshotSyncing = new Promise<void>((resolve) => {
      fl.observe = (file, op) => {
        if (op === 'datasync' && file.includes(`${path.sep}snapshots${path.sep}`)) resolve();
      };
    });
    fl.datasyncGate = new Promise((resolve) => (release = resolve));
    const snapshot = store.snapshot();
    await snapshotSyncing;
    // A held inline fdatasync would throw and fail the store: this call must go to the pool.
    const during = put(store, 'c');
    release();
    fl.datasyncGate = undefined;
    expect((await during).offset).toBe(2);
    await snapshot;
    expect(batches.map((b) => b.syncedInline)).toEqual([false, true, false]);
    await store.close();
  });

  test('a commit listener that calls during an inline acknowledgement gets the pool, not a nested inline batch', async () => {
    const { dir, store, batches } = await openRecorded();
    await put(store, 'a');
    const chained: Promise<unknown>[] = [];
    const chainLength = 20;
    store.onCommit((txs) => {
      // Synchronously, from inside the acknowledgement: each commit of the chain starts the next.
      const n = chained.length;
      if (txs.some((t) => t.offset >= 1) && n < chainLength) chained.push(put(store, `chain${n}`));
    });
    await put(store, 'b'); // inline (the store is idle)
    while (chained.length < chainLength) await chained[chained.length - 1];
    await Promise.all(chained);
    expect(batches[1]).toMatchObject({ count: 1, syncedInline: true });
    // The first chained call was cut inside b's inline acknowledgement: on the pool.
    expect(batches[2]).toMatchObject({ count: 1, syncedInline: false });
    await store.close();
    expect((await reopenedIds(dir)).length).toBe(2 + chainLength);
  });

  test('syncInlineTxMax 0 keeps every fdatasync on the pool', async () => {
    const { fl, store, batches } = await openRecorded({ syncInlineTxMax: 0 });
    for (let i = 0; i < 5; i++) await put(store, `p${i}`);
    expect(batches.every((b) => !b.syncedInline)).toBe(true);
    expect(fl.datasyncInlineCalls).toBe(0);
    await store.close();
  });

  test('a failed inline fdatasync fails the store: no ack, not retried, writes and reads refused; acknowledged writes survive', async () => {
    const { dir, fl, store } = await openRecorded();
    await put(store, 'a');
    await put(store, 'b');
    expect(fl.datasyncInlineCalls).toBe(1);
    fl.datasyncFailures = 1;
    const callsBefore = fl.datasyncCalls;
    await expect(put(store, 'c')).rejects.toMatchObject({ code: 'unavailable' }); // cut off the log: not applied
    expect(fl.datasyncInlineCalls).toBe(2); // the failed one ran inline
    expect(fl.datasyncCalls).toBe(callsBefore + 2); // never retried: the other is the cut's, on a description of its own
    await expect(put(store, 'd')).rejects.toMatchObject({ code: 'store_failed' });
    await expect(store.read((v) => v.table('objects').size)).rejects.toMatchObject({ code: 'store_failed' });
    await store.close();
    // 'c' was cut off the log before its caller heard it failed: the acknowledged ones, and only they.
    expect(await reopenedIds(dir)).toEqual(['a', 'b']);
  });

  test('ENOSPC on a write that would sync inline fails the call cleanly; the store keeps serving', async () => {
    const { dir, fl, store } = await openRecorded();
    await put(store, 'a');
    await put(store, 'b');
    const hashBefore = store.stateHash();
    fl.enospcWrites = 1;
    await expect(put(store, 'lost')).rejects.toMatchObject({ code: 'unavailable' });
    expect(store.stateHash()).toBe(hashBefore);
    expect((await put(store, 'c')).offset).toBe(2);
    expect(fl.datasyncInlineCalls).toBe(2); // b and c
    await store.close();
    expect(await reopenedIds(dir)).toEqual(['a', 'b', 'c']);
  });

  test('while more than inlineSyncCallersMax callers are active a lone batch syncs on the pool; once they are quiet, inline again', async () => {
    const realClock = callerClock.nowMs;
    let nowMs = 1_000_000;
    callerClock.nowMs = () => nowMs; // frozen: no window passes unless the test moves it
    try {
      const { dir, store, batches } = await openRecorded();
      await put(store, 'a');
      await put(store, 'b'); // inline: no caller told
      // Connections of a busy HTTP server, each with a request in this window.
      const connections = Array.from({ length: inlineSyncCallersMax + 1 }, () => ({}));
      for (const c of connections) callerActive(c);
      for (let i = 0; i < 3; i++) await put(store, `busy${i}`); // sequential, lone batches: yet on the pool
      // A caller's repeated requests count once: still too many, not more.
      callerActive(connections[0]!);
      await put(store, 'busy3');
      // One window later they still count (the window before); two windows of quiet and they do not.
      nowMs += callerWindowMs;
      await put(store, 'busy4');
      nowMs += callerWindowMs;
      callerActive(connections[0]!); // one caller left: as a sequential caller
      await put(store, 'quiet');
      expect(batches.map((b) => b.syncedInline)).toEqual([false, true, false, false, false, false, false, true]);
      await store.close();
      expect((await reopenedIds(dir)).length).toBe(8);
    } finally {
      callerClock.nowMs = realClock;
    }
  });

  test('up to inlineSyncCallersMax active callers still sync a lone batch inline', async () => {
    const realClock = callerClock.nowMs;
    const nowMs = 2_000_000;
    callerClock.nowMs = () => nowMs;
    try {
      const { store, batches } = await openRecorded();
      await put(store, 'a');
      for (let i = 0; i < inlineSyncCallersMax; i++) callerActive({});
      await put(store, 'b');
      expect(batches.map((b) => b.syncedInline)).toEqual([false, true]);
      await store.close();
    } finally {
      callerClock.nowMs = realClock;
    }
  });
});
