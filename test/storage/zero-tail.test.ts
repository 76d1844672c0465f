/**
 * The zero tail of the active segment (storage/log/zero-tail.ts): zeros ahead of the frames while
 * the store runs, a clean end after a crash, cut away at rotation and at clean close; any non-zero
 * byte after the last frame is still a torn tail, and zeros in a sealed segment are damage.
 */
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { DamagedStore } from '../../storage/errors.js';
import { inspectStore } from '../../storage/inspect.js';
import type { FileHandleLike } from '../../storage/io/file-layer.js';
import { NodeFileLayer } from '../../storage/io/node-file-layer.js';
import { checkFrame, encodeFrame, frameHeaderBytes } from '../../storage/log/frame.js';
import { preparedSegmentFileName } from '../../storage/log/prepared-segment.js';
import { segmentHeaderBytes } from '../../storage/log/segment.js';
import { isZeroRun, zeroAheadBytesMin, zeroFillBytes, zeroFillDue } from '../../storage/log/zero-tail.js';
import { repairStore } from '../../storage/repair.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-zerotail-'));
const logFiles = (dir: string) => readdirSync(path.join(dir, 'log')).sort();
const segments = (dir: string) => logFiles(dir).filter((f) => f.endsWith('.log')).map((f) => path.join(dir, 'log', f));
const put = (store: Store, i: number) => store.call('put', { id: `o${i % 13}`, type: 't', n: i, attributes: { pad: 'x'.repeat(40) } }, testCaller);

/** Bytes of frames in the last segment (what a clean close leaves). */
async function lastSegmentEnd(dir: string): Promise<{ file: string; end: number; size: number; zeroTailBytes: number }> {
  const report = await inspectStore(dir);
  const last = report.segments.at(-1)!;
  expect(last.problem, `last segment problem: ${JSON.stringify(last.problem)}`).toBeUndefined();
  const zeroTailBytes = last.zeroTailBytes ?? 0;
  return { file: path.join(dir, last.file), end: last.bytes - zeroTailBytes, size: last.bytes, zeroTailBytes };
}

/** A copy of the store's log taken while it runs: what the disk would hold after a crash now. */
function crashImage(dir: string): string {
  const copy = tmp();
  cpSync(path.join(dir, 'log'), path.join(copy, 'log'), { recursive: true });
  return copy;
}

describe('zero tail', () => {
  test('an all-zero frame header is never a frame, whatever follows', () => {
    expect(typeof checkFrame(Buffer.alloc(64), 0)).toBe('string');
    expect(typeof checkFrame(Buffer.alloc(frameHeaderBytes), 0)).toBe('string');
    // Offset 0 with a zero length (the header of the zero tail) is refused for its length.
    const frame = encodeFrame(0, Buffer.from([1]));
    frame.writeUInt32LE(0, 8);
    expect(checkFrame(frame, 0)).toMatch(/length 0/);
  });

  test('a fill is due only when fewer than zeroAheadBytesMin zeros remain, and never past the rotation point', () => {
    expect(zeroFillDue(100, 100, 64 << 20)).toEqual({ position: 100, bytes: zeroFillBytes });
    expect(zeroFillDue(100, 100 + zeroAheadBytesMin, 64 << 20)).toBeUndefined();
    expect(zeroFillDue(100, 99 + zeroAheadBytesMin, 64 << 20)).toEqual({ position: 99 + zeroAheadBytesMin, bytes: zeroFillBytes });
    // Writes that passed the zeros: the fill starts at the written end.
    expect(zeroFillDue(5000, 4000, 64 << 20)).toEqual({ position: 5000, bytes: zeroFillBytes });
    expect(zeroFillDue(100, 100, 4096)).toEqual({ position: 100, bytes: 3996 });
    expect(zeroFillDue(100, 4096, 4096)).toBeUndefined();
    expect(isZeroRun(Buffer.alloc(200_000), 3)).toBe(true);
    const one = Buffer.alloc(200_000);
    one[150_001] = 1;
    expect(isZeroRun(one, 3)).toBe(false);
    expect(isZeroRun(one, 150_002)).toBe(true);
    expect(isZeroRun(one, one.length)).toBe(false); // an empty run is no tail
  });

  test('an open store keeps zeros after its last frame; a clean close cuts them, and the store reopens with nothing torn', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 20; i++) await put(store, i);
    const open = await lastSegmentEnd(dir);
    expect(open.zeroTailBytes).toBeGreaterThanOrEqual(zeroAheadBytesMin);
    expect(isZeroRun(readFileSync(open.file), open.end)).toBe(true);
    const hash = store.stateHash();
    await store.close();
    expect(statSync(open.file).size).toBe(open.end);
    expect((await lastSegmentEnd(dir)).zeroTailBytes).toBe(0);
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.torn).toBeUndefined();
    expect(reopened.lastOffset).toBe(19);
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });

  test('a crash image with a zero tail reopens at its last frame: a clean end, nothing kept aside, and writing goes on into the zeros', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 20; i++) await put(store, i);
    const hash = store.stateHash();
    const image = crashImage(dir);
    await store.close();
    const before = await lastSegmentEnd(image);
    expect(before.zeroTailBytes).toBeGreaterThan(0);
    const reopened = await Store.open({ dir: image, module: counterModule });
    expect(reopened.report.torn).toBeUndefined();
    expect(logFiles(image).filter((f) => f.startsWith('torn-'))).toEqual([]);
    expect(reopened.lastOffset).toBe(19);
    expect(reopened.stateHash()).toBe(hash);
    expect((await put(reopened, 20)).offset).toBe(20);
    // The frame went into the zeros the crash left: the file did not grow.
    expect(statSync(before.file).size).toBe(before.size);
    const after = reopened.stateHash();
    await reopened.close();
    const again = await Store.open({ dir: image, module: counterModule });
    expect(again.stateHash()).toBe(after);
    await again.close();
  });

  test('a torn frame followed by zeros is a torn tail: cut at the frame, the rest kept aside', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 10; i++) await put(store, i);
    const hash = store.stateHash();
    await store.close();
    const [seg] = segments(dir);
    const end = statSync(seg!).size;
    // The next frame's first 30 bytes reached the disk, the rest of its page did not (zeros).
    const frame = encodeFrame(10, Buffer.alloc(200, 7));
    appendFileSync(seg!, Buffer.concat([frame.subarray(0, 30), Buffer.alloc(8192)]));
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.torn).toMatchObject({ position: end, bytes: 30 + 8192 });
    expect(logFiles(dir).some((f) => f.startsWith('torn-'))).toBe(true);
    expect(reopened.lastOffset).toBe(9);
    expect(reopened.stateHash()).toBe(hash);
    expect(statSync(seg!).size).toBe(end);
    await reopened.close();
  });

  test('one flipped bit inside the zero tail makes the rest a torn tail (kept aside), the frames before it stay', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 10; i++) await put(store, i);
    const hash = store.stateHash();
    const image = crashImage(dir);
    await store.close();
    const { file, end, size } = await lastSegmentEnd(image);
    const buf = readFileSync(file);
    buf[end + 5000] = 0x10;
    writeFileSync(file, buf);
    const reopened = await Store.open({ dir: image, module: counterModule });
    expect(reopened.report.torn).toMatchObject({ position: end, bytes: size - end });
    expect(reopened.lastOffset).toBe(9);
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });

  test('rotation cuts the sealed segment to its last frame; only the active one has zeros', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 16 * 1024 });
    for (let i = 0; i < 400; i++) await put(store, i);
    const report = await inspectStore(dir);
    expect(report.segments.length).toBeGreaterThan(2);
    for (const s of report.segments.slice(0, -1)) {
      expect(s.problem, s.file).toBeUndefined();
      expect(s.zeroTailBytes, s.file).toBeUndefined();
    }
    expect(report.segments.at(-1)!.zeroTailBytes).toBeGreaterThan(0);
    // What the store reports as its log is what a sealed segment holds, byte for byte.
    const sources = store.logSources();
    for (const s of sources.slice(0, -1)) expect(statSync(s.file).size).toBe(s.bytes);
    const hash = store.stateHash();
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });

  test('zeros after the frames of a sealed segment are damage: open refuses naming file and byte; inspect and repair agree', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 4096 });
    for (let i = 0; i < 200; i++) await put(store, i);
    await store.close();
    const segs = segments(dir);
    expect(segs.length).toBeGreaterThan(3);
    const victim = segs[1]!;
    const end = statSync(victim).size;
    appendFileSync(victim, Buffer.alloc(4096));
    const error = await Store.open({ dir, module: counterModule }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(DamagedStore);
    expect((error as DamagedStore).file).toBe(victim);
    expect((error as DamagedStore).position).toBe(end);
    expect((error as DamagedStore).message).toMatch(/zero run/);
    const inspected = (await inspectStore(dir)).segments[1]!;
    expect(inspected.problem).toMatchObject({ position: end });
    expect(inspected.zeroTailBytes).toBeUndefined();
    const repaired = await repairStore(dir, 1);
    expect(repaired).toMatchObject({ damaged: true, file: victim, position: end });
  });

  test('repair finds nothing to do in a crash image whose last segment ends in zeros', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 5; i++) await put(store, i);
    const image = crashImage(dir);
    await store.close();
    expect((await lastSegmentEnd(image)).zeroTailBytes).toBeGreaterThan(0);
    expect(await repairStore(image, 1)).toMatchObject({ damaged: false, droppedTransactions: 0 });
  });

  test('ENOSPC while zero-filling: the call still succeeds (its frames were written), the segment goes on appending, and ENOSPC on frames then fails calls cleanly', async () => {
    const dir = tmp();
    const first = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 5; i++) await put(first, i);
    await first.close(); // cut: the reopened store fills on its first write
    const fl = new DiskFullLayer();
    fl.fullForZeros = true;
    const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
    const acked: number[] = [];
    for (let i = 5; i < 25; i++) acked.push((await put(store, i)).offset);
    expect(acked).toEqual(Array.from({ length: 20 }, (_, i) => i + 5));
    expect(fl.zeroWritesRefused).toBe(1); // one try; the segment then appends
    const hash = store.stateHash();
    fl.fullForFrames = true;
    await expect(put(store, 25)).rejects.toMatchObject({ code: 'unavailable' });
    expect(store.stateHash()).toBe(hash);
    fl.fullForFrames = false;
    expect((await put(store, 26)).offset).toBe(25);
    const finalHash = store.stateHash();
    await store.close();
    const { size, end } = await lastSegmentEnd(dir);
    expect(size).toBe(end); // after close: frames only, no part of the refused fill
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.torn).toBeUndefined();
    expect(reopened.lastOffset).toBe(25);
    expect(reopened.stateHash()).toBe(finalHash);
    await reopened.close();
  });

  test('ENOSPC for the zeros of a new segment still creates it; rotation goes on', async () => {
    const dir = tmp();
    const fl = new DiskFullLayer();
    fl.fullForZeros = true;
    const store = await Store.open({ dir, module: counterModule, fileLayer: fl, segmentBytesMax: 4096 });
    for (let i = 0; i < 100; i++) await put(store, i);
    expect(store.logSources().length).toBeGreaterThan(2);
    // Each segment's first fill was refused (and the one of a segment prepared ahead, if any).
    expect(fl.zeroWritesRefused).toBeGreaterThanOrEqual(store.logSources().length);
    expect(fl.zeroWritesRefused).toBeLessThanOrEqual(store.logSources().length + 1);
    const hash = store.stateHash();
    await store.close();
    for (const file of segments(dir)) expect(isZeroRun(readFileSync(file), segmentHeaderBytes)).toBe(false);
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.torn).toBeUndefined();
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });
});

const allZero = (buffers: readonly Uint8Array[]) => buffers.every((b) => isZeroRun(Buffer.from(b.buffer, b.byteOffset, b.byteLength), 0));

/** The real disk, full on demand: for zero fills only, or for frames too (each write half done, as a full disk does). */
class DiskFullLayer extends NodeFileLayer {
  fullForZeros = false;
  fullForFrames = false;
  zeroWritesRefused = 0;

  override async open(file: string, flags: 'r' | 'r+' | 'w' | 'wx'): Promise<FileHandleLike> {
    const inner = await super.open(file, flags);
    const full = (buffers: readonly Uint8Array[]): boolean => {
      // The next segment is made under its prepared name (prepared-segment.ts).
      if (!file.endsWith('.log') && path.basename(file) !== preparedSegmentFileName) return false;
      if (allZero(buffers)) {
        if (this.fullForZeros) this.zeroWritesRefused++;
        return this.fullForZeros;
      }
      return this.fullForFrames;
    };
    const half = (buffers: readonly Uint8Array[]) => {
      const all = Buffer.concat(buffers);
      return [all.subarray(0, all.length >> 1)];
    };
    const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return {
      get fd() {
        return inner.fd;
      },
      async writev(buffers, position) {
        if (!full(buffers)) return inner.writev(buffers, position);
        await inner.writev(half(buffers), position);
        throw enospc();
      },
      writevSync(buffers, position) {
        if (!full(buffers)) return inner.writevSync(buffers, position);
        inner.writevSync(half(buffers), position);
        throw enospc();
      },
      truncateSync: (n) => inner.truncateSync(n),
      read: (b, o, l, p) => inner.read(b, o, l, p),
      datasync: () => inner.datasync(),
      datasyncSync: () => inner.datasyncSync(),
      truncate: (n) => inner.truncate(n),
      size: () => inner.size(),
      close: () => inner.close(),
    };
  }
}
