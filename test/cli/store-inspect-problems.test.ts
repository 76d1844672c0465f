/**
 * `store inspect DIR` reports a segment that does not chain on from the one before it (a missing
 * segment leaves a gap; a segment of another store overlaps) on the segment where the chain
 * breaks, and exits 3 when it lists any problem, of a segment or of a snapshot. The zeros ahead
 * of the writer at the end of the last segment are no problem.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { InspectReport } from '../../storage/inspect.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-store-inspect-'));
const healthy = path.join(work, 'healthy');
const other = path.join(work, 'other');
const segmentNames = (dir: string) => readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort();
const firstOffsetOf = (name: string) => Number(name.slice(0, -'.log'.length));

let copies = 0;
function copyOf(dir: string): string {
  const copy = path.join(work, `copy-${copies++}`);
  cpSync(dir, copy, { recursive: true });
  return copy;
}

async function inspect(dir: string): Promise<{ code: number | null; report: InspectReport }> {
  const r = await cli(['store', 'inspect', dir, '--json']);
  return { code: r.code, report: JSON.parse(r.stdout) as InspectReport };
}

beforeAll(async () => {
  // Segment sizes that differ, so the other store's segments start where none of this one's do.
  await writeMemoryStore(healthy, 1500, 64 * 1024);
  await writeMemoryStore(other, 1500, 40 * 1024);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.concurrent('store inspect', () => {
  test('a healthy store: no problem, exit 0', async () => {
    const { code, report } = await inspect(healthy);
    expect(report.segments.length).toBeGreaterThan(3);
    expect(report.segments.filter((s) => s.problem)).toEqual([]);
    expect(code).toBe(0);
  });

  test('a missing middle segment: a chain problem on the segment after the gap, exit 3', async () => {
    const dir = copyOf(healthy);
    const names = segmentNames(dir);
    rmSync(path.join(dir, 'log', names[1]!));
    const { code, report } = await inspect(dir);
    expect(code).toBe(3);
    const afterGap = report.segments.find((s) => s.file === path.join('log', names[2]!))!;
    expect(afterGap.problem).toEqual({ position: 0, reason: `segment starts at offset ${firstOffsetOf(names[2]!)} but the previous one ends before ${firstOffsetOf(names[1]!)}` });
    expect(report.segments.filter((s) => s.problem)).toHaveLength(1);
    const text = await cli(['store', 'inspect', dir]);
    expect(text.code).toBe(3);
    expect(text.stdout).toContain(`${names[2]}  offsets ${firstOffsetOf(names[2]!)}..`);
    expect(text.stdout).toMatch(/PROBLEM at byte 0: segment starts at offset \d+ but the previous one ends before \d+/);
  });

  test("another store's segment overlapping: a chain problem on that segment, exit 3", async () => {
    const dir = copyOf(healthy);
    const own = segmentNames(dir).map(firstOffsetOf);
    const foreign = segmentNames(other).find((name) => {
      const first = firstOffsetOf(name);
      return first > own[0]! && first < own.at(-1)! && !own.includes(first);
    })!;
    cpSync(path.join(other, 'log', foreign), path.join(dir, 'log', foreign));
    const { code, report } = await inspect(dir);
    expect(code).toBe(3);
    const intruder = report.segments.find((s) => s.file === path.join('log', foreign))!;
    expect(intruder.problem).toMatchObject({ position: 0, reason: expect.stringMatching(/^segment starts at offset \d+ but the previous one ends before \d+$/) });
    expect(report.segments.filter((s) => s.problem)).toEqual([intruder]);
  });

  test.each([
    ['a directory', (file: string) => mkdirSync(file)],
    // Opened to read, a FIFO waits for a writer: before, inspect waited for ever.
    ['a FIFO', (file: string) => execFileSync('mkfifo', [file])],
  ])("%s named like a segment: reported as that segment's problem, every real segment still scanned, exit 3", async (kind, make) => {
    const dir = copyOf(healthy);
    const odd = `${'9'.repeat(5).padStart(20, '0')}.log`;
    make(path.join(dir, 'log', odd));
    const { code, report } = await inspect(dir);
    expect(code).toBe(3);
    expect(report.segments.at(-1)).toEqual({ file: path.join('log', odd), firstOffset: 99999, lastOffset: null, frames: 0, bytes: 0, problem: { position: 0, reason: `${kind} stands where this segment file should be` } });
    const { report: before } = await inspect(healthy);
    expect(report.segments.slice(0, -1)).toEqual(before.segments);
  });

  test('the zeros ahead of the writer in the last segment of a store open now: no problem, exit 0', async () => {
    const dir = copyOf(healthy);
    const store = await Store.open({ dir, module: memoryModule, segmentBytesMax: 64 * 1024 });
    const image = path.join(work, 'crash-image');
    try {
      await store.call('object_put', { id: 'one-more', type: 'note', attributes: {} }, { tenant: 'acme', subject: 'test' });
      cpSync(path.join(dir, 'log'), path.join(image, 'log'), { recursive: true }); // what a crash now leaves
    } finally {
      await store.close();
    }
    const { code, report } = await inspect(image);
    expect(report.segments.at(-1)!.zeroTailBytes).toBeGreaterThan(0);
    expect(report.segments.filter((s) => s.problem)).toEqual([]);
    expect(code).toBe(0);
  });

  test('a damaged snapshot: exit 3', async () => {
    const dir = copyOf(healthy);
    const store = await Store.open({ dir, module: memoryModule, segmentBytesMax: 64 * 1024 });
    const snap = await store.snapshot();
    await store.close();
    const [snapshot] = readdirSync(path.join(dir, 'snapshots'));
    const binary = readdirSync(path.join(dir, 'snapshots', snapshot!)).find((f) => !f.endsWith('.json'))!;
    const file = path.join(dir, 'snapshots', snapshot!, binary);
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    writeFileSync(file, bytes);
    const { code, report } = await inspect(dir);
    expect(report.snapshots).toEqual([expect.objectContaining({ offset: snap.offset, problem: expect.any(String) })]);
    expect(report.segments.filter((s) => s.problem)).toEqual([]);
    expect(code).toBe(3);
  });
});
