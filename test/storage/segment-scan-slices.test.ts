/**
 * An open scans a segment on this thread (the last one always, sealed ones without a worker) in
 * slices, the event loop turning between them: the outcome is what one whole scan gives.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { LoopSlices } from '../../storage/io/event-loop.js';
import { scanSegmentBytes, scanSegmentBytesInSlices } from '../../storage/log/recovery.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

/** Frames enough for several slices (the clock is read every 1024 frames). */
const frames = 3000;

async function oneSegment(): Promise<{ file: string; buf: Buffer }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ioboxx-scan-slices-'));
  const store = await Store.open({ dir, module: counterModule });
  for (let from = 0; from < frames; from += 250) {
    await Promise.all(Array.from({ length: 250 }, (_, k) => store.call('put', { id: `o${from + k}`, type: 't', n: k }, testCaller)));
  }
  await store.close();
  const [name] = readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log'));
  const file = path.join(dir, 'log', name!);
  return { file, buf: readFileSync(file) };
}

describe('a segment scanned in slices', () => {
  test('gives the frames, end and problem of a whole scan, for a clean end, a zero tail and a damaged frame, with turns between slices', async () => {
    const { file, buf } = await oneSegment();
    const damaged = Buffer.from(buf);
    damaged[Math.floor(buf.length / 2)]! ^= 0xff;
    for (const bytes of [buf, Buffer.concat([buf, Buffer.alloc(4096)]), damaged]) {
      const slices = new LoopSlices(0);
      const sliced = await scanSegmentBytesInSlices(bytes, file, 0, slices);
      const whole = scanSegmentBytes(bytes, file, 0);
      const plain = (scanned: typeof whole) => ({ ...scanned, info: { ...scanned.info, positions: scanned.info.positions.slice(0, scanned.info.positions.length) } });
      expect(plain(sliced)).toEqual(plain(whole));
      expect(slices.turns).toBeGreaterThanOrEqual(1);
    }
    const slices = new LoopSlices(0);
    expect((await scanSegmentBytesInSlices(buf, file, 0, slices)).info.positions.length).toBe(frames);
    expect(slices.turns).toBe(Math.floor(frames / 1024));
  });
});
