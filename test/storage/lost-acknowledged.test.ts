/**
 * A log that ends short of what was acknowledged is damage, not a torn write: the open refuses
 * before cutting anything, naming file and byte, and `store repair` is the way on. The evidence:
 * the clean-close checkpoint, a snapshot (written only once its offset was durable), or valid
 * frames farther past a bad one than a crash can leave unsynced. Within that reach a bad tail
 * after a crash is still cut as torn.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { DamagedStore, MemoryError } from '../../storage/errors.js';
import { segmentHeaderBytes } from '../../storage/log/segment.js';
import { unsyncedFramesMax } from '../../storage/log/recovery.js';
import { repairStore } from '../../storage/repair.js';
import { lockFileName } from '../../storage/store-lock.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { asAfterCrash } from '../support/crash-image.js';
import { childExit } from '../support/child-exit.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-lost-'));
const lastSegment = (dir: string) => path.join(dir, 'log', readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort().at(-1)!);
const tornFiles = (dir: string) => readdirSync(path.join(dir, 'log')).filter((f) => f.startsWith('torn-'));

/** Commits `n` puts, `concurrency` at a time; returns the state hash at the last offset of each group (offsets 19, 39, ... for 20). */
async function commit(store: Store, n: number, concurrency = 20): Promise<string[]> {
  const hashes: string[] = [];
  for (let done = 0; done < n; done += concurrency) {
    const results = await Promise.all(Array.from({ length: Math.min(concurrency, n - done) }, (_, k) =>
      store.call('put', { id: `o${(done + k) % 97}`, type: 't', n: done + k }, testCaller)));
    hashes[Math.max(...results.map((r) => r.offset))] = store.stateHash();
  }
  return hashes;
}

/** The byte where the frame of `offset` starts in the only segment (frames of this workload differ in size: walk them). */
function framePosition(file: string, offset: number): number {
  const buf = readFileSync(file);
  let position = segmentHeaderBytes;
  for (let k = 0; k < offset; k++) position += 12 + buf.readUInt32LE(position + 8) + 4;
  return position;
}

function flipByte(file: string, position: number): void {
  const buf = readFileSync(file);
  buf[position] = buf[position]! ^ 0x40;
  writeFileSync(file, buf);
}

/** A new store with `n` puts, closed cleanly. */
async function closedStore(n: number, concurrency?: number): Promise<{ dir: string; hashes: string[] }> {
  const dir = tmp();
  const store = await Store.open({ dir, module: counterModule });
  const hashes = await commit(store, n, concurrency);
  await store.close();
  return { dir, hashes };
}

async function openError(dir: string): Promise<unknown> {
  return Store.open({ dir, module: counterModule }).then(async (s) => {
    await s.close();
    return undefined;
  }, (e: unknown) => e);
}

describe('a log that lost acknowledged transactions', () => {
  test('after a clean close, a bad frame in the last segment refuses the open; nothing is cut; repair cuts and the store opens', async () => {
    const { dir, hashes } = await closedStore(120);
    const segment = lastSegment(dir);
    const before = readFileSync(segment);
    const bad = framePosition(segment, 100) + 20;
    flipByte(segment, bad);
    const damaged = await openError(dir);
    expect(damaged).toBeInstanceOf(DamagedStore);
    expect((damaged as DamagedStore).file).toBe(segment);
    expect((damaged as DamagedStore).position).toBe(framePosition(segment, 100));
    expect((damaged as DamagedStore).message).toContain('closed cleanly at offset 119');
    expect((damaged as DamagedStore).message).toContain('store repair');
    // Refused before any cut: the segment is as damaged as it was, no torn file, and it refuses again.
    expect(readFileSync(segment).length).toBe(before.length);
    expect(tornFiles(dir)).toEqual([]);
    expect(await openError(dir)).toBeInstanceOf(DamagedStore);

    const report = await repairStore(dir, 1);
    expect(report).toMatchObject({ damaged: true, file: segment, droppedFrom: 100, droppedThrough: 119, droppedTransactions: 20 });
    expect(report.movedAside).toContain(path.join(dir, 'log', 'checkpoint.json'));
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.lastOffset).toBe(99);
    expect(reopened.stateHash()).toBe(hashes[99]);
    await reopened.close();
  });

  test('a snapshot past the log end refuses the open (the log lost frames it had made durable); repair moves it aside', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    const hashes = await commit(store, 60);
    await store.snapshot(); // at 59
    await commit(store, 10);
    await store.close();
    asAfterCrash(dir);
    const segment = lastSegment(dir);
    truncateSync(segment, framePosition(segment, 40)); // the log now ends at 39
    const damaged = await openError(dir);
    expect(damaged).toBeInstanceOf(DamagedStore);
    expect((damaged as DamagedStore).message).toMatch(/snapshot 0+59 was taken at offset 59/);
    expect((damaged as DamagedStore).message).toContain('transactions 40..59');

    const report = await repairStore(dir, 2);
    expect(report).toMatchObject({ damaged: true, droppedFrom: 40, droppedThrough: 59, droppedTransactions: 20 });
    expect(report.movedAside.some((f) => f.endsWith(path.join('snapshots', '00000000000000000059')))).toBe(true);
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.lastOffset).toBe(39);
    expect(reopened.stateHash()).toBe(hashes[39]);
    await reopened.close();
    expect(await repairStore(dir, 3)).toMatchObject({ damaged: false, droppedTransactions: 0, movedAside: [] });
  });

  test('after a crash, valid frames farther past a bad frame than a crash leaves unsynced make it damage', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    const total = unsyncedFramesMax + 200;
    await commit(store, total, 256);
    await store.close();
    asAfterCrash(dir);
    const segment = lastSegment(dir);
    flipByte(segment, framePosition(segment, 50) + 20);
    const damaged = await openError(dir);
    expect(damaged).toBeInstanceOf(DamagedStore);
    expect((damaged as DamagedStore).position).toBe(framePosition(segment, 50));
    expect((damaged as DamagedStore).message).toContain(`valid frames follow up to offset ${total - 1}`);
    expect(tornFiles(dir)).toEqual([]);
  });

  test('after a crash, a bad frame within the reach of unsynced writes is a torn tail: cut there, kept aside', async () => {
    const { dir, hashes } = await closedStore(300);
    asAfterCrash(dir);
    const segment = lastSegment(dir);
    flipByte(segment, framePosition(segment, 240) + 20);
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.lastOffset).toBe(239);
    expect(reopened.stateHash()).toBe(hashes[239]);
    expect(reopened.report.torn?.position).toBe(framePosition(segment, 240));
    expect(tornFiles(dir)).toHaveLength(1);
    await reopened.close();
  });

  test('a checkpoint whose hash differs refuses every open, until it is moved aside', async () => {
    const { dir } = await closedStore(30);
    const file = path.join(dir, 'log', 'checkpoint.json');
    const checkpoint = JSON.parse(readFileSync(file, 'utf8')) as { offset: number; stateHash: string };
    writeFileSync(file, JSON.stringify({ ...checkpoint, stateHash: '0'.repeat(checkpoint.stateHash.length) }));
    for (let attempt = 0; attempt < 2; attempt++) {
      const damaged = await openError(dir);
      expect(damaged).toBeInstanceOf(DamagedStore);
      expect((damaged as DamagedStore).file).toBe(file);
      expect(existsSync(file)).toBe(true);
    }
    renameSync(file, `${file}.rejected`);
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.lastOffset).toBe(29);
    await reopened.close();
  });

  test('a matching checkpoint is used once: the open removes it, the next close writes a new one', async () => {
    const { dir } = await closedStore(10);
    const file = path.join(dir, 'log', 'checkpoint.json');
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.checkpointVerified).toBe(true);
    expect(existsSync(file)).toBe(false);
    await commit(reopened, 5);
    await reopened.close();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ offset: 14 });
  });
});

describe('store repair and the LOCK', () => {
  test('repair refuses a store another live process holds, and one this process has open', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    await commit(store, 20);
    await expect(repairStore(dir, 1)).rejects.toMatchObject({ code: 'conflict' });
    await store.close();

    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(dir, lockFileName), String(holder.pid));
      flipByte(lastSegment(dir), segmentHeaderBytes + 20);
      const sizeBefore = statSync(lastSegment(dir)).size;
      const error = await repairStore(dir, 1).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(MemoryError);
      expect((error as MemoryError).message).toContain(`open in process ${holder.pid}`);
      expect(statSync(lastSegment(dir)).size).toBe(sizeBefore); // nothing cut
      expect(readdirSync(path.join(dir, 'log')).some((f) => f.startsWith('repair-'))).toBe(false);
    } finally {
      holder.kill('SIGKILL');
      await childExit(holder);
    }
    // The holder is gone: its LOCK is stale, and repair goes ahead.
    expect(await repairStore(dir, 2)).toMatchObject({ damaged: true, droppedFrom: 0 });
  });
});
