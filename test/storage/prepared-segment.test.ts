/**
 * The next segment is made ahead (prepared-segment.ts): rotation only names it. A prepared file
 * left by a crash is not part of the log and goes at the next open.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test, vi } from 'vitest';
import { nextSegmentPrepareFraction, preparedSegmentFileName } from '../../storage/log/prepared-segment.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-prepared-segment-'));
const put = (store: Store, i: number) => store.call('put', { id: `o${i % 13}`, type: 't', n: i, attributes: { pad: 'x'.repeat(40) } }, testCaller);
const segmentFiles = (dir: string) => readdirSync(path.join(dir, 'log')).filter((f) => /^\d{20}\.log$/.test(f));

describe('the next segment prepared ahead', () => {
  // Before, rotation created and zero-filled the next segment in line, while commits waited.
  test('the next segment exists, prepared, before the active one is full; rotation takes it', async () => {
    const dir = tmp();
    const segmentBytesMax = 16 * 1024;
    const store = await Store.open({ dir, module: counterModule, segmentBytesMax });
    const prepared = path.join(dir, 'log', preparedSegmentFileName);
    const active = path.join(dir, 'log', segmentFiles(dir)[0]!);
    // The segment is zeros past its frames (its zero tail): up to its last non-zero byte is its
    // written end, or a few bytes less when a frame ends in zeros.
    const writtenEnd = () => {
      const bytes = readFileSync(active);
      let end = bytes.length;
      while (end > 0 && bytes[end - 1] === 0) end--;
      return end;
    };
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
    const hash = store.stateHash();
    await store.close();
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.torn).toBeUndefined();
    expect(reopened.lastOffset).toBe(i - 1);
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
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
});
