/**
 * A call that only waits for the durability of other transactions (a read of the state they
 * changed, a replay of an idempotency key) is not failed by their write failing (ENOSPC): their
 * rollback leaves a durable state, and the call answers on it. A failed store still fails it.
 */
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-waits-failed-write-'));

async function openWithCounter(): Promise<{ dir: string; fl: FaultyFileLayer; store: Store }> {
  const dir = tmp();
  const fl = new FaultyFileLayer();
  const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
  await store.call('put', { id: 'kept', type: 't', n: 1 }, testCaller);
  return { dir, fl, store };
}

const keptN = (store: Store) => store.read((v) => v.table('objects').get(['kept'])?.n);

describe('waiting on a write that fails', () => {
  test('reads behind a write that fails with ENOSPC answer with the durable state', async () => {
    const { fl, store } = await openWithCounter();
    fl.enospcWrites = 1;
    const doomed = store.call('bump', { id: 'kept', by: 10 }, testCaller);
    const reads = Array.from({ length: 5 }, () => keptN(store)); // each saw n = 11, not yet durable
    await expect(doomed).rejects.toMatchObject({ code: 'unavailable' });
    const settled = await Promise.allSettled(reads);
    expect(settled.map((r) => (r.status === 'fulfilled' ? r.value : `rejected: ${(r.reason as Error).message}`))).toEqual([1, 1, 1, 1, 1]);
    await store.close();
  });

  test('a replay of an idempotency key whose first call is rolled back runs the call itself', async () => {
    const { dir, fl, store } = await openWithCounter();
    fl.enospcWrites = 1;
    const first = store.call('bump', { id: 'kept', by: 10 }, testCaller, { idempotencyKey: 'req-1' });
    const retry = store.call('bump', { id: 'kept', by: 10 }, testCaller, { idempotencyKey: 'req-1' }); // replays the first, pending
    await expect(first).rejects.toMatchObject({ code: 'unavailable' });
    const answer = await retry;
    expect(answer).toMatchObject({ result: { n: 11 }, replayed: false });
    expect(await store.call('bump', { id: 'kept', by: 10 }, testCaller, { idempotencyKey: 'req-1' })).toMatchObject({ offset: answer.offset, replayed: true });
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    expect(await keptN(reopened)).toBe(11);
    await reopened.close();
  });

  test('a read behind a write whose fdatasync fails is refused: the store failed', async () => {
    const { fl, store } = await openWithCounter();
    fl.datasyncFailures = 1;
    const doomed = store.call('bump', { id: 'kept', by: 10 }, testCaller);
    const read = keptN(store);
    await expect(doomed).rejects.toMatchObject({ code: 'unavailable' }); // cut off the log: not applied
    await expect(read).rejects.toMatchObject({ code: 'store_failed' });
    await store.close();
  });
});
