import { mkdtempSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { WriteNotApplied, WriteOutcomeUnknown } from '../../storage/errors.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-faults-'));

describe('failure semantics', () => {
  test('ENOSPC fails the unacknowledged calls cleanly; acknowledged work stays; the store keeps serving', async () => {
    const dir = tmp();
    const fl = new FaultyFileLayer();
    const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
    await store.call('put', { id: 'kept', type: 't', n: 1 }, testCaller);
    const hashBefore = store.stateHash();
    fl.enospcWrites = 1;
    const doomed = await Promise.allSettled([
      store.call('put', { id: 'x1', type: 't', n: 1 }, testCaller),
      store.call('bump', { id: 'kept', by: 10 }, testCaller),
    ]);
    for (const r of doomed) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'unavailable' });
    }
    expect(store.stateHash()).toBe(hashBefore);
    expect(store.lastOffset).toBe(0);
    const after = await store.call('put', { id: 'later', type: 't', n: 2 }, testCaller);
    expect(after.offset).toBe(1);
    const hash = store.stateHash();
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.stateHash()).toBe(hash);
    expect(await reopened.read((v) => v.table('objects').get(['x1']))).toBeUndefined();
    await reopened.close();
  });

  test('a failed fdatasync after the write landed: callers hear "not applied", and the reopened state is exactly the acknowledged one', async () => {
    const dir = tmp();
    const fl = new FaultyFileLayer();
    const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
    await store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    const acknowledgedHash = store.stateHash();
    fl.datasyncFailures = 1; // the write reaches the file; only its fdatasync fails
    const doomed = await Promise.allSettled([
      store.call('put', { id: 'b', type: 't', n: 1 }, testCaller),
      store.call('bump', { id: 'a', by: 10 }, testCaller),
    ]);
    for (const r of doomed) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(WriteNotApplied);
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'unavailable', hint: expect.stringMatching(/retry is safe/) });
    }
    expect(store.failed).toBe(true);
    expect(store.stateHash()).toBe(acknowledgedHash); // rolled back in memory too
    expect(store.lastOffset).toBe(0);
    await expect(store.call('put', { id: 'c', type: 't', n: 1 }, testCaller)).rejects.toMatchObject({ code: 'store_failed' });
    await expect(store.read((v) => v.table('objects').size)).rejects.toMatchObject({ code: 'store_failed' });
    await store.close();
    const logDir = path.join(dir, 'log');
    expect(readdirSync(logDir).filter((f) => f.startsWith('not-applied-'))).toHaveLength(1); // the cut frames, kept aside
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.stateHash(), 'the reopened state holds a transaction its caller was told failed').toBe(acknowledgedHash);
    expect(reopened.lastOffset).toBe(0);
    expect(await reopened.read((v) => v.table('objects').get(['b']))).toBeUndefined();
    // Writes go on from the acknowledged end.
    expect((await reopened.call('put', { id: 'd', type: 't', n: 1 }, testCaller)).offset).toBe(1);
    await reopened.close();
  });

  test('a failed fdatasync whose cut fails too: callers hear the outcome is unknown, and the store stays failed', async () => {
    const dir = tmp();
    const fl = new FaultyFileLayer();
    const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
    await store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    fl.datasyncFailures = 2; // the batch's fdatasync, then the cut's
    const doomed = store.call('put', { id: 'b', type: 't', n: 1 }, testCaller);
    await expect(doomed).rejects.toBeInstanceOf(WriteOutcomeUnknown);
    await expect(doomed).rejects.toMatchObject({ code: 'outcome_unknown', message: expect.stringMatching(/may or may not be durable; read after the store reopens/) });
    expect(store.failed).toBe(true);
    await expect(store.call('put', { id: 'c', type: 't', n: 1 }, testCaller)).rejects.toMatchObject({ code: 'store_failed' });
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    expect(await reopened.read((v) => v.table('objects').get(['a'])?.n)).toBe(1);
    await reopened.close();
  });

  test('the pending queue is bounded: past it calls fail with busy', async () => {
    const store = await Store.open({ dir: tmp(), module: counterModule, pendingTxMax: 10 });
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller)));
    const busy = results.filter((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'busy');
    expect(busy.length).toBeGreaterThan(0);
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(30 - busy.length);
    await store.close();
  });
});
