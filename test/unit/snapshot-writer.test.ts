import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { snapshotSliceBytesMax, snapshotSyncBytes } from '../../storage/snapshot/writer.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-snapwriter-'));

/** The real disk, recording every write and fdatasync per file (the snapshot's I/O pattern). */
function recordingFileLayer() {
  const fl = new FaultyFileLayer();
  const writes = new Map<string, number[]>();
  const syncs = new Map<string, number>();
  fl.observe = (file, op, bytes) => {
    if (op === 'writev') writes.set(file, [...(writes.get(file) ?? []), bytes]);
    else syncs.set(file, (syncs.get(file) ?? 0) + 1);
  };
  return { fl, writes, syncs };
}

/** ~512 KiB of attribute text per object: a snapshot of a few dozen is many MiB without many calls. */
const bulky = (i: number) => ({ id: `big-${i}`, type: 'blob', n: i, attributes: { text: `${i}:`.padEnd(512 * 1024, 'x') } });

describe('snapshot writer', () => {
  test('a big snapshot reaches the disk in bounded writes and stepwise fdatasyncs, and loads back with the same hash', async () => {
    const dir = tmp();
    const { fl, writes, syncs } = recordingFileLayer();
    const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
    const objects = Math.ceil((1.25 * snapshotSyncBytes) / (512 * 1024));
    for (let i = 0; i < objects; i++) await store.call('put', bulky(i), testCaller);
    const { stateHash } = await store.snapshot();
    await store.close();

    const snapshotFiles = [...writes.keys()].filter((f) => f.includes(`${path.sep}snapshots${path.sep}`) && !f.endsWith('.tmp'));
    expect(snapshotFiles.length).toBeGreaterThanOrEqual(2); // binary and JSON
    for (const file of snapshotFiles) {
      const sizes = writes.get(file)!;
      const bytes = sizes.reduce((a, b) => a + b, 0);
      // A slice stops once it passes its byte bound: one piece (one row here) past it at most.
      for (const size of sizes) expect(size, `a write of ${file}`).toBeLessThanOrEqual(snapshotSliceBytesMax + 1024 * 1024);
      // Flushed in steps as it grew, not in one sync at the end.
      expect(syncs.get(file), `fdatasyncs of ${file} (${bytes} bytes)`).toBeGreaterThanOrEqual(Math.floor(bytes / snapshotSyncBytes));
      expect(syncs.get(file)).toBeGreaterThan(1);
    }

    const again = await Store.open({ dir, module: counterModule });
    expect(again.report.replayedFrames).toBe(0);
    expect(again.stateHash()).toBe(stateHash);
    await again.close();
  });

  test('commits issued while a snapshot is written are acknowledged before it finishes', async () => {
    const store = await Store.open({ dir: tmp(), module: counterModule });
    for (let i = 0; i < 24; i++) await store.call('put', bulky(i), testCaller);
    let snapshotDone = false;
    const snapshot = store.snapshot().then((r) => {
      snapshotDone = true;
      return r;
    });
    let ackedDuring = 0;
    for (let i = 0; !snapshotDone; i++) {
      await store.call('bump', { id: `c${i % 4}`, by: 1 }, testCaller);
      if (!snapshotDone) ackedDuring++;
    }
    const { offset } = await snapshot;
    expect(ackedDuring).toBeGreaterThan(0);
    // The snapshot covers the state when it was asked for, not the commits made meanwhile.
    expect(offset).toBe(23);
    await store.close();
  });
});
