/**
 * The registry and a real store: a tenant whose fdatasync failed is refused `unavailable` (with
 * when to retry) until its reopen backoff is over; the next request then reopens it, and the
 * reopened store holds exactly what was acknowledged and takes writes again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { WriteNotApplied } from '../../storage/errors.js';
import { Store } from '../../storage/store.js';
import { failedStoreReopenDelayMsMin, StoreReopenPending } from '../../server/tenants/failed-store-reopen.js';
import { TenantRegistry } from '../../server/tenants/registry.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { asFileLayer, FaultyFileLayer } from '../support/faulty-file-layer.js';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-failed-reopen-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

test('a store whose fdatasync failed is reopened on the first request after the backoff, with exactly the acknowledged state, and takes writes again', async () => {
  let nowMs = 1_000_000;
  const faults = new FaultyFileLayer();
  const registry = new TenantRegistry<Store>({
    dataDir,
    open: (_tenant, dir) => Store.open({ dir, module: counterModule, fileLayer: asFileLayer(faults) }),
    failed: (store) => store.failed,
    nowMs: () => nowMs,
  });
  try {
    const put = (id: string) => registry.withTenant('acme', (store) => store.call('put', { id, type: 't', n: 1 }, testCaller));
    await put('kept');
    const acknowledgedHash = await registry.withTenant('acme', async (store) => store.stateHash());
    faults.datasyncFailures = 1;
    await expect(put('lost')).rejects.toBeInstanceOf(WriteNotApplied);
    const refused = await put('meanwhile').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StoreReopenPending);
    expect(refused).toMatchObject({ code: 'unavailable', retryAfterMs: failedStoreReopenDelayMsMin });
    nowMs += failedStoreReopenDelayMsMin;
    const reopened = await registry.withTenant('acme', async (store) => ({ failed: store.failed, hash: store.stateHash(), lastOffset: store.lastOffset }));
    expect(reopened).toEqual({ failed: false, hash: acknowledgedHash, lastOffset: 0 });
    expect((await put('after')).offset).toBe(1);
    expect(await registry.withTenant('acme', (store) => store.read((v) => [...v.table('objects').scan()].map((r) => r.id)))).toEqual(['after', 'kept']);
  } finally {
    await registry.close();
  }
});
