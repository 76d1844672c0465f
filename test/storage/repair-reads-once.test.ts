/**
 * `store repair` reads a damaged log once: every segment is read whole one time to plan the
 * repair (the damaged one once more, to keep its cut-off rest aside), not once to find the damage
 * and again to plan around it. Counted in bytes read per file, not in time.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { repairStore } from '../../storage/repair.js';
import { Store } from '../../storage/store.js';
import { countingFileLayer } from '../support/counting-file-layer.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-repair-reads-once-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('repair of a log damaged in a sealed segment reads each segment once, the damaged one at most twice', async () => {
  const dir = path.join(work, 'store');
  const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 2048 });
  for (let i = 0; i < 80; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: { text: `object ${i}` } }, testCaller);
  await store.close();
  const segments = readdirSync(path.join(dir, 'log')).filter((n) => n.endsWith('.log')).sort().map((n) => path.join(dir, 'log', n));
  expect(segments.length).toBeGreaterThanOrEqual(5);
  const damaged = segments[2]!;
  const bytes = readFileSync(damaged);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(damaged, bytes);
  const sizes = new Map(segments.map((s) => [s, statSync(s).size]));

  const counting = countingFileLayer();
  const report = await repairStore(dir, 1_700_000_000_000, counting);
  expect(report.damaged).toBe(true);
  expect(report.file).toBe(damaged);
  for (const segment of segments) {
    const read = counting.bytesReadOf.get(segment) ?? 0;
    if (segment === damaged) expect(read, `${path.basename(segment)} (the damaged one) read ${read / sizes.get(segment)!} times`).toBeLessThanOrEqual(2 * sizes.get(segment)!);
    else expect(read, `${path.basename(segment)} read ${read / sizes.get(segment)!} times`).toBe(sizes.get(segment));
  }
});
