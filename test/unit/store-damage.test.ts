import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { DamagedStore } from '../../storage/errors.js';
import { segmentBytesMaxLimit, segmentFileBytesMax, segmentFileName } from '../../storage/log/segment.js';
import { repairStore } from '../../storage/repair.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { asAfterCrash } from '../support/crash-image.js';
import { countingFileLayer } from '../support/counting-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-damage-'));
const segments = (dir: string) => readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort().map((f) => path.join(dir, 'log', f));

/** Writes n puts; returns the state hash after each acknowledged offset. */
async function writeStore(dir: string, n: number, segmentBytesMax?: number): Promise<string[]> {
  const store = await Store.open({ dir, module: counterModule, ...(segmentBytesMax ? { segmentBytesMax } : {}) });
  const hashes: string[] = [];
  for (let i = 0; i < n; i++) {
    await store.call('put', { id: `o${i % 13}`, type: 't', n: i, attributes: { pad: 'x'.repeat(40) } }, testCaller);
    hashes.push(store.stateHash());
  }
  await store.close();
  return hashes;
}

function flipBit(file: string, position: number): void {
  const buf = readFileSync(file);
  buf[position] = buf[position]! ^ 0x10;
  writeFileSync(file, buf);
}

describe('damage', () => {
  test('a last segment cut at any byte recovers to a prefix of acknowledged states; cut bytes kept aside', async () => {
    const base = tmp();
    const hashes = await writeStore(base, 40);
    asAfterCrash(base);
    const [seg] = segments(base);
    const size = statSync(seg!).size;
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: size - 1 }), async (cut) => {
      const dir = tmp();
      for (const f of ['log']) (await import('node:fs')).cpSync(path.join(base, f), path.join(dir, f), { recursive: true });
      truncateSync(segments(dir)[0]!, cut);
      const store = await Store.open({ dir, module: counterModule });
      const offset = store.lastOffset;
      expect(offset).toBeLessThan(40);
      if (offset >= 0) expect(store.stateHash()).toBe(hashes[offset]);
      // Writing continues at the next offset.
      const r = await store.call('put', { id: 'after', type: 't', n: 0 }, testCaller);
      expect(r.offset).toBe(offset + 1);
      await store.close();
    }), { numRuns: 15 });
  });

  test('flipped bits in the tail of the last segment: truncated there, torn bytes kept', async () => {
    const dir = tmp();
    const hashes = await writeStore(dir, 30);
    asAfterCrash(dir);
    const seg = segments(dir)[0]!;
    flipBit(seg, statSync(seg).size - 30);
    const store = await Store.open({ dir, module: counterModule });
    expect(store.lastOffset).toBe(28);
    expect(store.stateHash()).toBe(hashes[28]);
    expect(store.report.torn?.keptAt).toBeTruthy();
    expect(readdirSync(path.join(dir, 'log')).some((f) => f.startsWith('torn-'))).toBe(true);
    await store.close();
  });

  test('one flipped bit in a sealed segment: open refuses naming file and byte; repair cuts there and reports the drop', async () => {
    const dir = tmp();
    const hashes = await writeStore(dir, 200, 2048);
    const segs = segments(dir);
    expect(segs.length).toBeGreaterThan(3);
    const victim = segs[1]!;
    flipBit(victim, 300);
    const error = await Store.open({ dir, module: counterModule }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(DamagedStore);
    const damaged = error as DamagedStore;
    expect(damaged.file).toBe(victim);
    expect(damaged.position).toBeLessThanOrEqual(300);
    expect(damaged.message).toContain('store repair');
    const report = await repairStore(dir, 1);
    expect(report.damaged).toBe(true);
    expect(report.droppedThrough).toBe(199);
    const store = await Store.open({ dir, module: counterModule });
    expect(store.lastOffset).toBe(report.droppedFrom! - 1);
    expect(report.droppedTransactions).toBe(200 - report.droppedFrom!);
    expect(store.stateHash()).toBe(hashes[store.lastOffset]);
    await store.close();
  });

  test('a damaged newest snapshot falls back to the previous one', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 20; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
    await store.snapshot();
    for (let i = 0; i < 20; i++) await store.call('bump', { id: `o${i}`, by: 1 }, testCaller);
    const newest = await store.snapshot();
    await store.call('bump', { id: 'o1', by: 1 }, testCaller);
    const hash = store.stateHash();
    await store.close();
    const snapFile = path.join(dir, 'snapshots', String(newest.offset).padStart(20, '0'), 'state.msgpack');
    flipBit(snapFile, 10);
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.snapshotOffset).toBe(19);
    expect(reopened.report.snapshotsSkipped.join()).toContain('hash');
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });

  test('a file in a snapshot directory\'s place is skipped as damage, not an open refused with a bare ENOTDIR', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 20; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
    await store.snapshot();
    await store.call('bump', { id: 'o1', by: 1 }, testCaller);
    const hash = store.stateHash();
    await store.close();
    const stray = path.join(dir, 'snapshots', String(20).padStart(20, '0'));
    writeFileSync(stray, 'not a snapshot');
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.snapshotOffset).toBe(19);
    expect(reopened.report.snapshotsSkipped.join()).toContain(stray);
    expect(reopened.stateHash()).toBe(hash);
    // Snapshots go on: the next one, past it, retires it as any damaged older snapshot.
    await reopened.call('bump', { id: 'o2', by: 1 }, testCaller);
    expect((await reopened.snapshot()).offset).toBe(21);
    expect(readdirSync(path.join(dir, 'snapshots'))).not.toContain(path.basename(stray));
    await reopened.close();
  });

  test('a snapshot found damaged at open is not one of the two kept: the next snapshot keeps the verified one, so a second fault still falls back', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 1024 });
    for (let i = 0; i < 20; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
    const good = await store.snapshot();
    for (let i = 0; i < 20; i++) await store.call('bump', { id: `o${i}`, by: 1 }, testCaller);
    const damaged = await store.snapshot();
    await store.close();
    const snapshotDir = (offset: number) => path.join(dir, 'snapshots', String(offset).padStart(20, '0'));
    flipBit(path.join(snapshotDir(damaged.offset), 'state.msgpack'), 10);

    const reopened = await Store.open({ dir, module: counterModule, segmentBytesMax: 1024 });
    expect(reopened.report.snapshotOffset).toBe(good.offset);
    for (let i = 0; i < 20; i++) await reopened.call('bump', { id: `o${i}`, by: 1 }, testCaller);
    const newest = await reopened.snapshot(); // retention runs here, and retires segments below the older kept one
    await reopened.call('bump', { id: 'o1', by: 1 }, testCaller);
    const hash = reopened.stateHash();
    await reopened.close();
    expect(readdirSync(path.join(dir, 'snapshots')).sort()).toEqual([snapshotDir(good.offset), snapshotDir(newest.offset)].map((d) => path.basename(d)));

    flipBit(path.join(snapshotDir(newest.offset), 'state.msgpack'), 10);
    const again = await Store.open({ dir, module: counterModule, segmentBytesMax: 1024 });
    expect(again.report.snapshotOffset).toBe(good.offset);
    expect(again.stateHash()).toBe(hash);
    await again.close();
  });

  test('old segments are deleted only when all of them lie below the older kept snapshot', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 1024 });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 60; i++) await store.call('bump', { id: `c${i % 5}`, by: 1 }, testCaller);
      await store.snapshot();
    }
    const snaps = readdirSync(path.join(dir, 'snapshots')).sort();
    expect(snaps.length).toBe(2);
    const older = Number(snaps[0]);
    const firstSeg = Number(path.basename(segments(dir)[0]!, '.log'));
    expect(firstSeg).toBeLessThanOrEqual(older + 1);
    const hash = store.stateHash();
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });
});

describe('a log that starts past offset 0 with no snapshot to replay onto', () => {
  test.each(['deleted', 'damaged'] as const)('every snapshot %s: the open and repair refuse, naming the restore; repair moves nothing', async (how) => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 1024 });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 60; i++) await store.call('bump', { id: `c${i % 5}`, by: 1 }, testCaller);
      await store.snapshot();
    }
    await store.close();
    expect(Number(path.basename(segments(dir)[0]!, '.log'))).toBeGreaterThan(0); // segments below the older snapshot retired
    const snapshotsDir = path.join(dir, 'snapshots');
    for (const name of readdirSync(snapshotsDir)) {
      const snapshot = path.join(snapshotsDir, name);
      if (how === 'deleted') rmSync(snapshot, { recursive: true });
      else for (const file of readdirSync(snapshot).filter((f) => f.endsWith('.msgpack'))) flipBit(path.join(snapshot, file), 20);
    }
    const logBefore = readdirSync(path.join(dir, 'log')).sort();
    await expect(Store.open({ dir, module: counterModule })).rejects.toThrow(/no valid snapshot, and the log starts at offset/);
    const refused = await repairStore(dir, 1).then(() => undefined, (error: unknown) => error);
    expect(refused).toBeInstanceOf(DamagedStore);
    expect((refused as DamagedStore).message).toMatch(/the log starts at offset \d+: the transactions below it are gone/);
    expect((refused as DamagedStore).hint).toContain('ioboxx-memory restore');
    expect(readdirSync(path.join(dir, 'log')).sort()).toEqual(logBefore); // nothing moved aside
  });
});

describe('odd files in the log directory', () => {
  test.each([
    ['a directory', (file: string) => mkdirSync(file), 'a directory stands where this segment file should be'],
    // Opened to read, a FIFO waits for a writer: before, the open waited for ever.
    ['a FIFO', (file: string) => execFileSync('mkfifo', [file]), 'a FIFO stands where this segment file should be'],
    // Sparse: no disk used. Segments are read whole, so before, the open tried to allocate it all.
    ['a file over segmentFileBytesMax', (file: string) => (writeFileSync(file, ''), truncateSync(file, segmentFileBytesMax + 1)),
      `${segmentFileBytesMax + 1} bytes, over ${segmentFileBytesMax} (segmentFileBytesMax): not a segment this engine wrote`],
  ])('%s named like the next segment: the open refuses naming it, unread; repair moves it aside whole and the store opens with its state', async (_, make, reason) => {
    const dir = tmp();
    const hashes = await writeStore(dir, 5);
    const odd = path.join(dir, 'log', segmentFileName(5)); // where offset 5 would begin: the chain holds
    make(odd);
    const counting = countingFileLayer();
    const error = await Store.open({ dir, module: counterModule, fileLayer: counting }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(DamagedStore);
    expect((error as DamagedStore).file).toBe(odd);
    expect((error as DamagedStore).position).toBe(0);
    expect((error as DamagedStore).reason).toBe(reason);
    const report = await repairStore(dir, 1, counting);
    expect(report).toMatchObject({ damaged: true, file: odd, position: 0, reason, droppedTransactions: 0 });
    expect(counting.bytesRead, 'the odd entry is never read').toBeLessThan(1024 * 1024);
    // The clean-close checkpoint goes aside with any damage (repair.ts): the open replays the log.
    expect(readdirSync(path.join(dir, 'log', 'repair-1')).sort()).toEqual([`${path.basename(odd)}.from-0`, 'checkpoint.json']);
    const store = await Store.open({ dir, module: counterModule });
    expect(store.lastOffset).toBe(4);
    expect(store.stateHash()).toBe(hashes[4]);
    await store.close();
  });

  test('a rotation size over segmentBytesMaxLimit (or too small for a header) is refused before anything is opened', async () => {
    const dir = tmp();
    for (const segmentBytesMax of [segmentBytesMaxLimit + 1, 24, 1.5]) {
      await expect(Store.open({ dir, module: counterModule, segmentBytesMax })).rejects.toThrow(`segmentBytesMax must be an integer from 25 to ${segmentBytesMaxLimit} (segmentBytesMaxLimit), got ${segmentBytesMax}`);
    }
    expect(readdirSync(dir)).toEqual([]);
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: segmentBytesMaxLimit });
    await store.close();
  });

  test('the store directory deleted under an open store: the next acknowledgement fails the store instead, loudly', async () => {
    const dir = tmp();
    const errors: unknown[] = [];
    const store = await Store.open({ dir, module: counterModule, filesCheckMs: 0, onBackgroundError: (e) => errors.push(e) });
    const first = await store.call('put', { id: 'a', type: 't', n: 1 }, testCaller);
    expect(first.offset).toBe(0);
    (await import('node:fs')).rmSync(dir, { recursive: true, force: true });
    const error = await store.call('put', { id: 'b', type: 't', n: 2 }, testCaller).then(() => undefined, (e: unknown) => e);
    expect((error as { code?: string }).code).toBe('store_failed');
    expect((error as Error).message).toContain('deleted while it was open');
    expect(store.failed).toBe(true);
    expect(store.durableOffset).toBe(0); // nothing past the deletion was acknowledged
    expect(errors).toHaveLength(1);
    await store.close();
  });
});
