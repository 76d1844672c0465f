/**
 * The next segment is made ahead (prepared-segment.ts): rotation only names it. A prepared file
 * left by a crash is not part of the log and goes at the next open.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import type { FileHandleLike } from '../../storage/io/file-layer.js';
import { NodeFileLayer } from '../../storage/io/node-file-layer.js';
import { busySegmentBytes, nextSegmentPrepareFraction, preparedFillBytes, preparedSegmentFileName } from '../../storage/log/prepared-segment.js';
import { segmentHeaderBytes } from '../../storage/log/segment.js';
import { isZeroRun, zeroFillBytes } from '../../storage/log/zero-tail.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { asFileLayer, FaultyFileLayer } from '../support/faulty-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-prepared-segment-'));
const put = (store: Store, i: number) => store.call('put', { id: `o${i % 13}`, type: 't', n: i, attributes: { pad: 'x'.repeat(40) } }, testCaller);
const segmentFiles = (dir: string) => readdirSync(path.join(dir, 'log')).filter((f) => /^\d{20}\.log$/.test(f));
/** 16 puts at once of 4 KB rows, numbered on from `puts.n`: a batch of ~64 KB. */
const bigPuts = (store: Store, puts: { n: number }) =>
  Promise.all(Array.from({ length: 16 }, () => store.call('put', { id: `o${puts.n % 13}`, type: 't', n: puts.n++, attributes: { pad: 'x'.repeat(4000) } }, testCaller)));

/**
 * Where a segment's frames end, from its bytes: it is zeros past its frames (its zero tail), so up
 * to its last non-zero byte, or a few bytes less when a frame ends in zeros.
 */
function framesEnd(file: string): number {
  const bytes = readFileSync(file);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return end;
}

/** Closes `store` and reopens its directory: nothing torn, every transaction there, the same state. */
async function expectSameAfterReopen(store: Store, dir: string): Promise<void> {
  const hash = store.stateHash();
  const lastOffset = store.lastOffset;
  await store.close();
  const reopened = await Store.open({ dir, module: counterModule });
  expect(reopened.report.torn).toBeUndefined();
  expect(reopened.lastOffset).toBe(lastOffset);
  expect(reopened.stateHash()).toBe(hash);
  await reopened.close();
}

describe('the next segment prepared ahead', () => {
  // Before, rotation created and zero-filled the next segment in line, while commits waited.
  test('the next segment exists, prepared, before the active one is full; rotation takes it', async () => {
    const dir = tmp();
    const segmentBytesMax = 16 * 1024;
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax });
    const prepared = path.join(dir, 'log', preparedSegmentFileName);
    const active = path.join(dir, 'log', segmentFiles(dir)[0]!);
    const writtenEnd = () => framesEnd(active);
    let i = 0;
    while (writtenEnd() < segmentBytesMax * nextSegmentPrepareFraction && segmentFiles(dir).length === 1) await put(store, i++);
    // The preparation runs in the background. Nothing is written while we wait for it, so no
    // rotation can come first, however slowly a loaded machine runs the thread pool.
    await vi.waitFor(() => expect(existsSync(prepared), 'no next segment prepared at 3/4 full').toBe(true), { timeout: 10_000 });
    expect(segmentFiles(dir), 'the segment was full before the next one was prepared').toHaveLength(1);
    while (segmentFiles(dir).length === 1) await put(store, i++);
    // Rotation renamed the prepared file; the next one comes only when the new segment fills.
    expect(segmentFiles(dir)).toHaveLength(2);
    await vi.waitFor(() => expect(existsSync(prepared)).toBe(false));
    expect(store.lastOffset).toBe(i - 1);
    await expectSameAfterReopen(store, dir);
  });

  // Before, a segment made ahead kept the zeros it got before the disk filled until rotation: on a
  // nearly full disk the store refused commits as "the disk is full" while up to a segment of the
  // space was its own zeros (9 MiB of a 40 MiB tmpfs, served over stdio).
  test('a segment made ahead that fills the disk gives its zeros back to the commits at once; rotation takes it, and it appends', async () => {
    const dir = tmp();
    const faults = new FaultyFileLayer();
    const fillsBeforeFull = 2;
    let fills = 0;
    // The fills ahead, by their size: the store's first segment was made under the same name.
    faults.observe = (file, op, bytes) => {
      if (op === 'writev' && path.basename(file) === preparedSegmentFileName && bytes === preparedFillBytes && ++fills === fillsBeforeFull + 1) faults.enospcWrites = 1;
    };
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 1024 * 1024, fileLayer: asFileLayer(faults) });
    const prepared = path.join(dir, 'log', preparedSegmentFileName);
    let i = 0;
    while (fills <= fillsBeforeFull && segmentFiles(dir).length === 1) await put(store, i++);
    expect(segmentFiles(dir), 'the disk filled before rotation').toHaveLength(1);
    await vi.waitFor(() => expect(statSync(prepared).size, 'the segment made ahead still holds its zeros on the full disk').toBe(segmentHeaderBytes), { timeout: 10_000 });
    while (segmentFiles(dir).length === 1) await put(store, i++);
    expect(store.failed).toBe(false);
    expect(store.lastOffset).toBe(i - 1);
    await expectSameAfterReopen(store, dir);
  });

  test('a prepared file left by a crash is not part of the log: the next open removes it and loses nothing', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 16 * 1024 });
    for (let i = 0; i < 300; i++) await put(store, i);
    const hash = store.stateHash();
    const lastOffset = store.lastOffset;
    await store.close();
    // What a crash while the next segment was being made leaves: a prepared file cut short (not zeros).
    const leftover = path.join(dir, 'log', preparedSegmentFileName);
    writeFileSync(leftover, Buffer.from('half-made next segment'));
    const reopened = await Store.open({ dir, module: counterModule });
    expect(existsSync(leftover)).toBe(false);
    expect(reopened.lastOffset).toBe(lastOffset);
    expect(reopened.stateHash()).toBe(hash);
    for (let i = 300; i < 600; i++) await put(reopened, i);
    await reopened.close();
  });

  // Before, the next segment got its first 1 MiB of zeros only, and its batches wrote the rest on
  // the main thread; and the first segment was left only when full.
  test('a busy store takes a segment made ahead and zeroed whole as soon as it is ready: its batches write no zeros of their own', async () => {
    const dir = tmp();
    // Half of it is past busySegmentBytes: a segment made in line is left at busySegmentBytes, once the next is ready.
    const segmentBytesMax = 20 * 1024 * 1024;
    const fl = new ZeroWritesLayer();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax, fileLayer: fl });
    // Segments are made under the prepared name, in order: the first in line by the open, the second ahead.
    const made = (n: number) => (): SegmentWrites => fl.segments[n] ?? { zerosAhead: 0, zerosSyncedAhead: 0, fillAheadBytesMax: 0, unsyncedAheadBytesMax: 0, zerosOnCommitPath: 0, framesOnCommitPath: 0 };
    const [first, second] = [made(0), made(1)];
    const puts = { n: 0 };
    while (first().framesOnCommitPath < busySegmentBytes) await bigPuts(store, puts);
    // Nothing is written while the next segment is made, however slowly a loaded machine does it.
    await vi.waitFor(() => expect(second().zerosSyncedAhead, 'the segment made ahead is zeroed to its end').toBe(segmentBytesMax - segmentHeaderBytes), { timeout: 20_000 });
    expect(segmentFiles(dir)).toHaveLength(1);
    while (segmentFiles(dir).length === 1) await bigPuts(store, puts);
    expect(first().framesOnCommitPath, 'the first segment was left once the next was ready').toBeLessThan(busySegmentBytes + 4 * zeroFillBytes);
    expect(first().zerosOnCommitPath, 'the first segment, made in line, filled as its batches went').toBeGreaterThan(0);
    // Into the second segment, past the point where its batches would have had to fill zeros.
    while (second().framesOnCommitPath < 2.2 * zeroFillBytes) await bigPuts(store, puts);
    expect(segmentFiles(dir)).toHaveLength(2);
    expect(second().zerosOnCommitPath).toBe(0);
    // Made in small fills, each synced before the next: the disk never had more zeros than one to write beside the commits.
    expect(second().fillAheadBytesMax).toBe(preparedFillBytes);
    expect(second().unsyncedAheadBytesMax).toBe(preparedFillBytes);
    const hash = store.stateHash();
    const lastOffset = store.lastOffset;
    await store.close();
    // Closed: the zero tail was cut, so each segment holds exactly its frames; they all replay.
    const sizes = segmentFiles(dir).map((f) => statSync(path.join(dir, 'log', f)).size);
    expect(sizes).toEqual([first(), second()].map((s) => segmentHeaderBytes + s.framesOnCommitPath));
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.torn).toBeUndefined();
    expect(reopened.lastOffset).toBe(lastOffset);
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  }, 60_000);

  // Before, rotation waited for the rest of the zeros of a segment still being made (at 256 callers,
  // 80-145 ms with every commit held, once zeroing took longer than filling the active segment).
  test('rotation does not wait for the zeros of a segment being made: it stops after its fill, is taken as it is, and its batches fill the rest', async () => {
    const dir = tmp();
    const segmentBytesMax = 4 * 1024 * 1024;
    // A disk on which each of the preparation's fdatasyncs takes 100 ms more: over 3 s to zero the segment whole.
    const fl = new ZeroWritesLayer(100);
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax, fileLayer: fl });
    const puts = { n: 0 };
    while (segmentFiles(dir).length === 1) await bigPuts(store, puts);
    const taken = fl.segments[1]!;
    expect(taken.zerosAhead, 'taken before it was zeroed whole').toBeLessThan(segmentBytesMax - segmentHeaderBytes);
    expect(taken.zerosSyncedAhead, 'every zero written ahead was synced before it was taken').toBe(taken.zerosAhead);
    while (taken.framesOnCommitPath < taken.zerosAhead + zeroFillBytes) await bigPuts(store, puts);
    expect(taken.zerosOnCommitPath, 'its batches filled the zeros it lacked').toBeGreaterThan(0);
    await expectSameAfterReopen(store, dir);
  }, 60_000);

  // Before, a reopened store took the zeros a crash left in a segment made ahead for a segment made
  // in line: at busySegmentBytes it made another ahead and left this one for it, half used.
  test('after a crash, a segment made ahead and zeroed whole is still one: the reopened store fills it before it rotates', async () => {
    const dir = tmp();
    const segmentBytesMax = 20 * 1024 * 1024;
    const fl = new ZeroWritesLayer();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax, fileLayer: fl });
    const puts = { n: 0 };
    const second = () => fl.segments[1];
    while ((second()?.zerosSyncedAhead ?? 0) < segmentBytesMax - segmentHeaderBytes) {
      if ((fl.segments[0]?.framesOnCommitPath ?? 0) < busySegmentBytes) await bigPuts(store, puts);
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
    while (segmentFiles(dir).length === 1) await bigPuts(store, puts);
    await bigPuts(store, puts);
    // What the disk holds after a crash now: the second segment's frames, then zeros to its end.
    const image = tmp();
    cpSync(path.join(dir, 'log'), path.join(image, 'log'), { recursive: true });
    const lastOffset = store.lastOffset;
    await store.close();
    const active = path.join(image, 'log', segmentFiles(image)[1]!);
    expect(statSync(active).size, 'the crash image holds the whole segment made ahead').toBe(segmentBytesMax);

    const reopenedFl = new ZeroWritesLayer();
    const reopened = await Store.open({ dir: image, module: counterModule, segmentBytesMax, fileLayer: reopenedFl });
    expect(reopened.lastOffset).toBe(lastOffset);
    // Past busySegmentBytes: the next segment is made ahead, and once it is ready a segment made in
    // line would give way to it. This one, zeroed whole, is filled first.
    while (statSync(active).size === segmentBytesMax && framesEnd(active) < busySegmentBytes + zeroFillBytes) await bigPuts(reopened, puts);
    await vi.waitFor(() => expect(reopenedFl.segments[0]?.zerosSyncedAhead, 'the next segment made ahead, zeroed whole').toBe(segmentBytesMax - segmentHeaderBytes), { timeout: 20_000 });
    await bigPuts(reopened, puts);
    expect(segmentFiles(image), 'the segment zeroed whole was not left for the next').toHaveLength(2);
    expect(framesEnd(active)).toBeGreaterThan(busySegmentBytes + zeroFillBytes);
    await reopened.close();
  }, 60_000);
});

const isZeros = (buffers: readonly Uint8Array[]) => buffers.every((b) => b.byteLength === 0 || isZeroRun(Buffer.from(b.buffer, b.byteOffset, b.byteLength), 0));
const byteLength = (buffers: readonly Uint8Array[]) => buffers.reduce((n, b) => n + b.byteLength, 0);

interface SegmentWrites {
  /** Zeros written before the segment was named (prepareSegment, on the thread pool), and of those, the ones a completed fdatasync covered. */
  zerosAhead: number;
  zerosSyncedAhead: number;
  /** The largest of those writes, and the most zeros written ahead that no fdatasync had covered yet. */
  fillAheadBytesMax: number;
  unsyncedAheadBytesMax: number;
  /** Zeros and frames written by the commit path (writevSync, on the main thread). */
  zerosOnCommitPath: number;
  framesOnCommitPath: number;
}

/**
 * The real disk, counting what is written into each file made under the prepared name, in the
 * order they were made; while such a file has that name (it is being made), each of its
 * fdatasyncs takes `datasyncDelayMs` more (a slow disk).
 */
class ZeroWritesLayer extends NodeFileLayer {
  readonly segments: SegmentWrites[] = [];
  /** The file under the prepared name now, if any. */
  private preparing: SegmentWrites | undefined;

  constructor(private readonly datasyncDelayMs = 0) {
    super();
  }

  override async rename(from: string, to: string): Promise<void> {
    await super.rename(from, to);
    if (path.basename(from) === preparedSegmentFileName) this.preparing = undefined;
  }

  override async open(file: string, flags: 'r' | 'r+' | 'w' | 'wx'): Promise<FileHandleLike> {
    const inner = await super.open(file, flags);
    if (path.basename(file) !== preparedSegmentFileName) return inner;
    const writes: SegmentWrites = { zerosAhead: 0, zerosSyncedAhead: 0, fillAheadBytesMax: 0, unsyncedAheadBytesMax: 0, zerosOnCommitPath: 0, framesOnCommitPath: 0 };
    this.segments.push(writes);
    this.preparing = writes;
    // The handle itself, with the three calls that count (as counting-file-layer.ts does for reads).
    return Object.create(inner, {
      writev: {
        value: (buffers: readonly Uint8Array[], position: number) => {
          if (isZeros(buffers)) {
            writes.zerosAhead += byteLength(buffers);
            writes.fillAheadBytesMax = Math.max(writes.fillAheadBytesMax, byteLength(buffers));
            writes.unsyncedAheadBytesMax = Math.max(writes.unsyncedAheadBytesMax, writes.zerosAhead - writes.zerosSyncedAhead);
          }
          return inner.writev(buffers, position);
        },
      },
      writevSync: {
        value: (buffers: readonly Uint8Array[], position: number) => {
          if (isZeros(buffers)) writes.zerosOnCommitPath += byteLength(buffers);
          else writes.framesOnCommitPath += byteLength(buffers);
          return inner.writevSync(buffers, position);
        },
      },
      datasync: {
        value: async () => {
          const zeros = writes.zerosAhead;
          if (this.datasyncDelayMs > 0 && this.preparing === writes) await new Promise((resolve) => setTimeout(resolve, this.datasyncDelayMs));
          await inner.datasync();
          writes.zerosSyncedAhead = zeros;
        },
      },
    }) as FileHandleLike;
  }
}
