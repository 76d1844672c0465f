/**
 * A store opened to be read only, whether or not a live process has it open: the engine's own
 * open on an OverlayFileLayer (as `store verify --read-only`), so recovery runs unchanged and no
 * file on disk changes.
 *
 * Beside a live writer the open would be refused by its LOCK; here that LOCK is hidden from this
 * open only (the overlay takes its own LOCK in memory), and the store is read as its files are at
 * that moment: a torn tail is the writer mid-append, cut in memory. The writer's retention may
 * remove a file between listing and reading it, or a snapshot may appear past the log end this
 * open scanned: as in `store inspect`, the open is then run again, up to inspectAttemptsMax times.
 */
import * as path from 'node:path';
import { inspectAttemptsMax } from './inspect.js';
import { OverlayFileLayer } from './io/overlay-file-layer.js';
import type { StoreModule } from './reducer.js';
import { Store, type StoreOptions } from './store.js';
import { lockFileName, lockHolder } from './store-lock.js';

export interface ReadOnlyStore {
  readonly store: Store;
  /** The process that held the store when it was read, or null: a live store is read as it was at that moment. */
  readonly openByPid: number | null;
}

export async function openStoreReadOnly(dir: string, module: StoreModule, onProgress?: StoreOptions['onProgress']): Promise<ReadOnlyStore> {
  for (let attempt = 1; ; attempt++) {
    const openByPid = lockHolder(dir);
    const fileLayer = new OverlayFileLayer();
    if (openByPid !== null) await fileLayer.unlink(path.join(dir, lockFileName)).catch(() => undefined); // released meanwhile: nothing to hide
    try {
      const store = await Store.open({ dir, module, fileLayer, ...(onProgress ? { onProgress } : {}) });
      return { store, openByPid };
    } catch (error) {
      // Only a store in motion is read again: a closed store's refusal is its verdict.
      const moving = openByPid !== null || lockHolder(dir) !== null;
      if (!moving || attempt >= inspectAttemptsMax) throw error;
    }
  }
}
