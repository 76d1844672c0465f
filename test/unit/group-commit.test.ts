import { mkdtempSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { batchCutTxFloor, batchCutTxMin, batchesInFlightMax, Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-groupcommit-'));

/** A store on a file layer whose fdatasyncs the test holds and releases, and whose log I/O it can wait for. */
async function openHeld() {
  const dir = tmp();
  const fl = new FaultyFileLayer();
  // Every fdatasync on the pool: an inline one (a lone small batch) cannot be held.
  const store = await Store.open({ dir, module: counterModule, fileLayer: fl, syncInlineTxMax: 0 });
  const seen = { writev: 0, datasync: 0 };
  const waiting: { op: 'writev' | 'datasync'; count: number; resolve: () => void }[] = [];
  fl.observe = (file, op) => {
    if (!file.includes(`${path.sep}log${path.sep}`)) return;
    seen[op]++;
    for (const w of waiting.filter((x) => x.op === op && seen[op] >= x.count)) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve();
    }
  };
  let release = (): void => undefined;
  return {
    dir,
    fl,
    store,
    seen,
    /** Resolves once the log has seen `more` further calls of `op` (counted from now). */
    next(op: 'writev' | 'datasync', more = 1): Promise<void> {
      const count = seen[op] + more;
      return new Promise((resolve) => waiting.push({ op, count, resolve }));
    },
    hold(): void {
      fl.datasyncGate = new Promise((resolve) => (release = resolve));
    },
    release(): void {
      fl.datasyncGate = undefined;
      release();
    },
  };
}

describe('group commit pipeline', () => {
  test('calls arriving during a fdatasync are written and synced without waiting for it; acks stay in offset order', async () => {
    const h = await openHeld();
    h.hold();
    const acks: number[] = [];
    const firstSync = h.next('datasync');
    const first = h.store.call('put', { id: 'a', type: 't', n: 1 }, testCaller).then((r) => acks.push(r.offset));
    await firstSync;
    const secondSync = h.next('datasync');
    const second = h.store.call('put', { id: 'b', type: 't', n: 2 }, testCaller).then((r) => acks.push(r.offset));
    // The second batch's fdatasync starts while the first one is still held.
    await secondSync;
    expect(acks).toEqual([]);
    expect(h.store.durableOffset).toBe(-1);
    h.release();
    await Promise.all([first, second]);
    expect(acks).toEqual([0, 1]);
    expect(h.store.durableOffset).toBe(1);
    const hash = h.store.stateHash();
    await h.store.close();
    const reopened = await Store.open({ dir: h.dir, module: counterModule });
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });

  test('a subscriber and a commit listener that arrive while transactions wait for their fdatasync get them, read back from the frames', async () => {
    const h = await openHeld();
    await h.store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    h.hold();
    const synced = h.next('datasync');
    const update = h.store.call('put', { id: 'a', type: 't', n: 2, attributes: { k: [1, 'x'] } }, testCaller);
    const remove = h.store.call('del', { id: 'a' }, testCaller);
    const insert = h.store.call('put', { id: 'b', type: 'u', n: 3 }, testCaller);
    await synced;
    const events: unknown[] = [];
    const records: { offset: number; reducer: string; args: unknown; tables: string[] }[] = [];
    h.store.subscribe('objects', () => true, (offset, changes) => events.push({ offset, changes }));
    h.store.onCommit((txs) => {
      for (const tx of txs) records.push({ offset: tx.offset, reducer: tx.invocation.reducer, args: tx.invocation.args, tables: tx.changes.map((c) => c.table) });
    });
    h.release();
    await Promise.all([update, remove, insert]);
    const a1 = { id: 'a', type: 't', n: 1, attributes: {} };
    const a2 = { id: 'a', type: 't', n: 2, attributes: { k: [1, 'x'] } };
    expect(events).toEqual([
      { offset: 1, changes: [{ kind: 'update', oldRow: a1, row: a2 }] },
      { offset: 2, changes: [{ kind: 'delete', oldRow: a2 }] },
      { offset: 3, changes: [{ kind: 'insert', row: { id: 'b', type: 'u', n: 3, attributes: {} } }] },
    ]);
    expect(records).toEqual([
      { offset: 1, reducer: 'put', args: { id: 'a', type: 't', n: 2, attributes: { k: [1, 'x'] } }, tables: ['objects'] },
      { offset: 2, reducer: 'del', args: { id: 'a' }, tables: ['objects'] },
      { offset: 3, reducer: 'put', args: { id: 'b', type: 'u', n: 3, attributes: {} }, tables: ['objects'] },
    ]);
    await h.store.close();
  });

  test('a lost writeback is heard by the fdatasync of the batch it hit, even when a newer batch\'s fdatasync heard it first', async () => {
    const h = await openHeld();
    const release: (() => void)[] = [];
    h.fl.datasyncGates.push(new Promise((r) => release.push(r)), new Promise((r) => release.push(r)));
    const settled = (p: Promise<unknown>) => p.then(() => 'acknowledged', (error: { code?: string }) => error.code);
    const olderSync = h.next('datasync');
    const older = settled(h.store.call('put', { id: 'a', type: 't', n: 1 }, testCaller));
    await olderSync;
    const newerSync = h.next('datasync');
    const newer = settled(h.store.call('put', { id: 'b', type: 't', n: 2 }, testCaller));
    await newerSync;
    const logDir = path.join(h.dir, 'log');
    const [segment] = readdirSync(logDir).filter((f) => f.endsWith('.log'));
    // A page of the older batch failed its writeback; the newer batch's fdatasync checks first.
    h.fl.loseWriteback(path.join(logDir, segment!));
    release[1]!();
    await vi.waitFor(() => expect(h.fl.writebackErrorsReported).toBe(1));
    release[0]!();
    // Both cut off the log (through a description that did not hear the loss): not applied.
    expect(await older).toBe('unavailable');
    expect(await newer).toBe('unavailable');
    expect(h.store.durableOffset).toBe(-1);
    await h.store.close();
  });

  test('ENOSPC on a batch written behind one still syncing: the earlier is acknowledged, the later rolled back', async () => {
    const h = await openHeld();
    h.hold();
    const firstSync = h.next('datasync');
    const first = h.store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    await firstSync;
    h.fl.enospcWrites = 1;
    const failedWrite = h.next('writev');
    const second = h.store.call('put', { id: 'b', type: 't', n: 2 }, testCaller);
    const secondSettled = second.then(() => 'acknowledged', (error: { code?: string }) => error.code);
    await failedWrite;
    h.release();
    expect((await first).offset).toBe(0);
    expect(await secondSettled).toBe('unavailable');
    expect(h.store.lastOffset).toBe(0);
    expect(await h.store.read((v) => v.table('objects').get(['b']))).toBeUndefined();
    // The store keeps serving, from the offset after the acknowledged batch.
    expect((await h.store.call('put', { id: 'c', type: 't', n: 3 }, testCaller)).offset).toBe(1);
    const hash = h.store.stateHash();
    await h.store.close();
    const reopened = await Store.open({ dir: h.dir, module: counterModule });
    expect(reopened.stateHash()).toBe(hash);
    expect(await reopened.read((v) => [...v.table('objects').scan()].map((r) => r.id))).toEqual(['a', 'c']);
    await reopened.close();
  });

  test('a failed fdatasync of the older batch fails the store; the newer batch is not acknowledged either', async () => {
    const h = await openHeld();
    await h.store.call('put', { id: 'kept', type: 't', n: 0 }, testCaller);
    h.hold();
    h.fl.datasyncFailures = 1; // the first held fdatasync (the older batch) fails
    const firstSync = h.next('datasync');
    const first = h.store.call('put', { id: 'a', type: 't', n: 1 }, testCaller).then(() => 'acknowledged', (e: { code?: string }) => e.code);
    await firstSync;
    const secondSync = h.next('datasync');
    const second = h.store.call('put', { id: 'b', type: 't', n: 2 }, testCaller).then(() => 'acknowledged', (e: { code?: string }) => e.code);
    await secondSync;
    h.release();
    expect(await first).toBe('unavailable');
    expect(await second).toBe('unavailable');
    expect(h.store.durableOffset).toBe(0);
    await expect(h.store.call('put', { id: 'c', type: 't', n: 3 }, testCaller)).rejects.toMatchObject({ code: 'store_failed' });
    await h.store.close();
    const reopened = await Store.open({ dir: h.dir, module: counterModule });
    expect(await reopened.read((v) => [...v.table('objects').scan()].map((r) => r.id))).toEqual(['kept']);
    await reopened.close();
  });

  test('many calls in one tick: the first batch is written and its fdatasync started before the tick ends; acks in offset order', async () => {
    const h = await openHeld();
    const acks: number[] = [];
    const calls: Promise<unknown>[] = [];
    const callsInTick = batchCutTxMin * (batchesInFlightMax + 1);
    for (let i = 0; i < callsInTick; i++) {
      calls.push(h.store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller).then((r) => acks.push(r.offset)));
    }
    // Still inside the tick: the disk already syncs the first transactions while the rest were computed.
    expect(h.seen.datasync).toBe(batchesInFlightMax);
    expect(h.seen.writev).toBe(batchesInFlightMax);
    expect(h.store.durableOffset).toBe(-1);
    await Promise.all(calls);
    expect(acks).toEqual(Array.from({ length: callsInTick }, (_, i) => i));
    const hash = h.store.stateHash();
    await h.store.close();
    const reopened = await Store.open({ dir: h.dir, module: counterModule });
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });

  /**
   * With one batch of `inFlightTx` transactions held in flight, how many calls made in one tick it
   * takes before the next batch is written within that tick (0: none was, up to `callsMax`).
   */
  async function callsUntilMidTickCut(inFlightTx: number, callsMax: number): Promise<number> {
    const h = await openHeld();
    h.hold();
    const calls: Promise<unknown>[] = [];
    const firstWrite = h.next('writev');
    for (let i = 0; i < inFlightTx; i++) calls.push(h.store.call('put', { id: `a${i}`, type: 't', n: i }, testCaller));
    await firstWrite;
    expect(h.seen.writev).toBe(1);
    let cutAfter = 0;
    for (let i = 0; i < callsMax && cutAfter === 0; i++) {
      calls.push(h.store.call('put', { id: `b${i}`, type: 't', n: i }, testCaller));
      if (h.seen.writev === 2) cutAfter = i + 1;
    }
    h.release();
    await Promise.all(calls);
    await h.store.close();
    return cutAfter;
  }

  test('with one batch in flight, the next is cut mid-tick once as many wait as it holds, never fewer than batchCutTxFloor', async () => {
    expect(batchCutTxFloor).toBeLessThan(batchCutTxMin);
    // Calls that fit one batch below batchCutTxMin: written at the end of their tick, one batch.
    expect(await callsUntilMidTickCut(12, 100)).toBe(12);
    expect(await callsUntilMidTickCut(batchCutTxMin - 1, 100)).toBe(batchCutTxMin - 1);
    expect(await callsUntilMidTickCut(3, 100)).toBe(batchCutTxFloor);
  });

  test('segments rotate under a full pipeline: every acknowledged call is in the log after reopen', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 4096 });
    const offsets: number[] = [];
    await Promise.all(Array.from({ length: 64 }, async (_, caller) => {
      for (let i = 0; i < 8; i++) offsets.push((await store.call('put', { id: `c${caller}-${i}`, type: 't', n: i }, testCaller)).offset);
    }));
    expect(offsets.length).toBe(512);
    expect(new Set(offsets).size).toBe(512);
    expect(store.logSources().length).toBeGreaterThan(2);
    const hash = store.stateHash();
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.checkpointVerified).toBe(true);
    expect(reopened.stateHash()).toBe(hash);
    expect(await reopened.read((v) => v.table('objects').size)).toBe(512);
    await reopened.close();
  });
});
