import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { TenantRegistry } from '../../server/tenants/registry.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-open-slices-'));
/** Enough rows for several slices of every piece of an open (slices are checked every 1024 rows or frames). */
const rows = 5000;

async function writeRows(store: Store): Promise<void> {
  for (let from = 0; from < rows; from += 250) {
    await Promise.all(Array.from({ length: 250 }, (_, k) => store.call('put', { id: `o${from + k}`, type: `t${(from + k) % 13}`, n: from + k }, testCaller)));
  }
}

/** What an open must rebuild: the state hash, the counts, and every index's order. */
async function stateOf(store: Store): Promise<unknown> {
  const byType = await store.read((v) => [...v.table('objects').scan({ index: 'by_type' })].map((r) => r.id));
  return { hash: store.stateHash(), counts: store.tableCounts(), byType };
}

/** Opens with a turn of the event loop at every check, counting the turns other work saw meanwhile. */
async function openSliced(dir: string): Promise<{ store: Store; ticks: number }> {
  let ticks = 0;
  let ticking = true;
  const tick = (): void => {
    ticks++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const store = await Store.open({ dir, module: counterModule, openSliceMs: 0 });
  ticking = false;
  return { store, ticks };
}

describe('an open gives the event loop turns', () => {
  test('opening from a snapshot builds the indexes in slices, other work running between them, and rebuilds the same state', async () => {
    const dir = tmp();
    const live = await Store.open({ dir, module: counterModule });
    await writeRows(live);
    await live.snapshot();
    const expected = await stateOf(live);
    await live.close();

    const { store, ticks } = await openSliced(dir);
    expect(store.report.replayedFrames).toBe(0);
    // by_type and the idempotency table's index: each walked in several slices.
    expect(store.report.loopTurns).toBeGreaterThanOrEqual(4);
    expect(ticks).toBeGreaterThanOrEqual(store.report.loopTurns);
    expect(await stateOf(store)).toEqual(expected);
    await store.close();

    const unsliced = await Store.open({ dir, module: counterModule, openSliceMs: Number.POSITIVE_INFINITY });
    expect(unsliced.report.loopTurns).toBe(0);
    expect(await stateOf(unsliced)).toEqual(expected);
    await unsliced.close();
  });

  test('opening by replay applies the log and checks the closing hash in slices, and rebuilds the same state', async () => {
    const dir = tmp();
    const live = await Store.open({ dir, module: counterModule });
    await writeRows(live);
    const expected = await stateOf(live);
    await live.close();

    const { store, ticks } = await openSliced(dir);
    expect(store.report.replayedFrames).toBe(rows);
    expect(store.report.checkpointVerified).toBe(true);
    expect(store.report.loopTurns).toBeGreaterThanOrEqual(4);
    expect(ticks).toBeGreaterThanOrEqual(store.report.loopTurns);
    expect(await stateOf(store)).toEqual(expected);
    await store.close();
  });

  test('a shutdown begun while an open gives the loop turns waits for the open, then closes the store', async () => {
    const dataDir = tmp();
    const writer = new TenantRegistry<Store>({ dataDir, open: (_tenant, dir) => Store.open({ dir, module: counterModule }) });
    const expected = await writer.withTenant('acme', async (store) => {
      await writeRows(store);
      return stateOf(store);
    });
    await writer.close();

    let replayed!: () => void;
    const midOpen = new Promise<void>((resolve) => (replayed = resolve));
    const registry = new TenantRegistry<Store>({
      dataDir,
      // The replay's last progress comes before the closing hash is checked: the open still has turns to give.
      open: (_tenant, dir) => Store.open({ dir, module: counterModule, openSliceMs: 0, onProgress: (phase) => phase === 'replay' && replayed() }),
    });
    let seen: Store | undefined;
    const admitted = registry.withTenant('acme', async (store) => {
      seen = store;
      return stateOf(store);
    });
    await midOpen;
    expect(seen).toBeUndefined();
    await registry.close();
    // The call admitted before the shutdown saw the whole state; the store closed after it (its lock is free again).
    expect(await admitted).toEqual(expected);
    const again = await Store.open({ dir: tenantDir(dataDir, 'acme'), module: counterModule });
    expect(await stateOf(again)).toEqual(expected);
    await again.close();
  });
});
