/**
 * What a failed write leaves on disk: nothing. A half-written snapshot or tmp file is never read,
 * and on a full disk it holds the space the store needs to go on (and to be opened again).
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { durableWriteTmpFile, nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { binaryFileName, manifestFileName, snapshotDirName, snapshotsDir } from '../../storage/snapshot/manifest.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-failed-snapshot-'));

const snapshotDirs = (dir: string): string[] => (existsSync(snapshotsDir(dir)) ? readdirSync(snapshotsDir(dir)).sort() : []);

/** Whether the path exists as a name (a dangling or device link counts). */
function named(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

async function openWithRows(rows: number): Promise<{ dir: string; fl: FaultyFileLayer; store: Store }> {
  const dir = tmp();
  const fl = new FaultyFileLayer();
  const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
  for (let i = 0; i < rows; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
  return { dir, fl, store };
}

describe('a failed write leaves no files behind', () => {
  test('writeFileDurable that fails (ENOSPC) removes its tmp file and leaves the file as it was', async () => {
    const dir = tmp();
    const file = path.join(dir, 'LOCK');
    writeFileSync(file, 'before');
    symlinkSync('/dev/full', durableWriteTmpFile(file)); // every write into it fails with ENOSPC
    await expect(nodeFileLayer.writeFileDurable(file, Buffer.from('after'))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(named(durableWriteTmpFile(file)), 'tmp file left behind').toBe(false);
    expect(readFileSync(file, 'utf8')).toBe('before');
  });

  const faults: [string, (fl: FaultyFileLayer) => void][] = [
    ['a data file write fails with ENOSPC', (fl) => void (fl.enospcWrites = 1)],
    ['the final fdatasync of a data file fails with EIO', (fl) => void (fl.datasyncFailures = 1)],
    ['the manifest write fails with ENOSPC', (fl) => void fl.enospcDurableWrites.add(manifestFileName)],
  ];
  test.each(faults)('a snapshot removes its directory when %s, and the store snapshots again once it can', async (_, inject) => {
    const { dir, fl, store } = await openWithRows(20);
    inject(fl);
    await expect(store.snapshot()).rejects.toThrow();
    expect(snapshotDirs(dir), 'directories of the failed snapshot').toEqual([]);
    fl.enospcDurableWrites.clear();
    const { offset } = await store.snapshot();
    expect(snapshotDirs(dir)).toEqual([snapshotDirName(offset)]);
    await store.close();
  });

  test('a snapshot of a state whose write then failed (rolled back) fails and removes its directory, though a later transaction reuses the offset', async () => {
    const { dir, fl, store } = await openWithRows(5);
    fl.enospcWrites = 1; // the log's write of the next call: it is rolled back
    const doomed = store.call('put', { id: 'rolled-back', type: 't', n: 0 }, testCaller);
    const snapshot = store.snapshot(); // of the state with that call applied
    await expect(doomed).rejects.toMatchObject({ code: 'unavailable' });
    const reused = await store.call('put', { id: 'durable', type: 't', n: 0 }, testCaller);
    await expect(snapshot, 'a snapshot holding a rolled-back transaction').rejects.toMatchObject({
      code: 'snapshot_not_taken', message: expect.stringContaining('(ENOSPC)'), hint: expect.stringContaining('free disk space'),
    });
    expect(snapshotDirs(dir)).toEqual([]);
    const hash = store.stateHash();
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.lastOffset).toBe(reused.offset);
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });

  test('the open removes unfinished snapshot directories a crash left, newer ones too; complete ones stay', async () => {
    const { dir, store } = await openWithRows(10);
    const { offset } = await store.snapshot();
    await store.close();
    const unfinished = [snapshotDirName(offset - 3), snapshotDirName(offset + 5)];
    for (const name of unfinished) {
      mkdirSync(path.join(snapshotsDir(dir), name));
      writeFileSync(path.join(snapshotsDir(dir), name, binaryFileName), Buffer.alloc(4096));
    }
    const reopened = await Store.open({ dir, module: counterModule });
    expect(snapshotDirs(dir)).toEqual([snapshotDirName(offset)]);
    expect(reopened.report.snapshotOffset).toBe(offset);
    await reopened.close();
  });

  test('a snapshot written after an unfinished one at a later offset removes it (no complete snapshot before)', async () => {
    const { dir, store } = await openWithRows(10);
    const later = snapshotDirName(store.lastOffset + 100);
    mkdirSync(path.join(snapshotsDir(dir), later), { recursive: true });
    const { offset } = await store.snapshot();
    expect(snapshotDirs(dir)).toEqual([snapshotDirName(offset)]);
    await store.close();
  });
});
