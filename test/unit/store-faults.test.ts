import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
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

  test('a failed fdatasync fails the store: no ack, writes and reads refused until reopened', async () => {
    const dir = tmp();
    const fl = new FaultyFileLayer();
    const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
    await store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    fl.datasyncFailures = 1;
    const callsBefore = fl.datasyncCalls;
    await expect(store.call('put', { id: 'b', type: 't', n: 1 }, testCaller)).rejects.toMatchObject({ code: 'store_failed' });
    expect(fl.datasyncCalls).toBe(callsBefore + 1); // never retried
    await expect(store.call('put', { id: 'c', type: 't', n: 1 }, testCaller)).rejects.toMatchObject({ code: 'store_failed' });
    await expect(store.read((v) => v.table('objects').size)).rejects.toMatchObject({ code: 'store_failed' });
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    // 'b' reached the page cache; whether it is on disk is unknown, but 'a' (acknowledged) must be there.
    expect(await reopened.read((v) => v.table('objects').get(['a'])?.n)).toBe(1);
    expect(await reopened.read((v) => v.table('objects').get(['c']))).toBeUndefined();
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
