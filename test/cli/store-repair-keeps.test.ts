/**
 * `store repair DIR` keeps every acknowledged transaction a verified snapshot and the intact log
 * can still recover, and its report says exactly what it moved and what the store lost. Each test
 * damages a copy of one real memory store (200 object_put calls in three ~18 KiB segments,
 * snapshots at 49 and 149, a clean close), runs the real CLI, and reopens the store.
 */
import { appendFileSync, copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DamagedStore } from '../../storage/errors.js';
import { segmentFileName } from '../../storage/log/segment.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { cli } from './cli-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-store-repair-keeps-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const segmentBytesMax = 18 * 1024;
const puts = 200;
/** The state hash after each acknowledged offset of each pristine store (rows carry their write time, so the two differ). */
let hashes: string[] = [];
let hashesNoSnapshots: string[] = [];
let withSnapshots = '';
let withoutSnapshots = '';

/** 200 puts, one at a time (so every offset's hash is known), a snapshot after each offset in `snapshotsAt`, a clean close. */
async function writeStore(dir: string, snapshotsAt: readonly number[]): Promise<string[]> {
  const store = await Store.open({ dir, module: memoryModule, segmentBytesMax });
  const caller = { tenant: 'acme', subject: 'test' };
  const out: string[] = [];
  for (let i = 0; i < puts; i++) {
    await store.call('object_put', { id: `note-${i}`, type: 'note', attributes: { n: i, text: `note number ${i}` } }, caller);
    out.push(store.stateHash());
    if (snapshotsAt.includes(i)) await store.snapshot();
  }
  await store.close();
  return out;
}

beforeAll(async () => {
  withSnapshots = path.join(work, 'pristine');
  withoutSnapshots = path.join(work, 'pristine-no-snapshots');
  hashes = await writeStore(withSnapshots, [49, 149]);
  hashesNoSnapshots = await writeStore(withoutSnapshots, []);
  // The layout every test relies on: three segments, the first two below snapshot 149, whose log starts in the last one.
  for (const dir of [withSnapshots, withoutSnapshots]) {
    const [, second, third, more] = firstOffsets(dir);
    expect(second! > 50 && third! <= 150 && third! > second! && more === undefined, firstOffsets(dir).join()).toBe(true);
  }
}, 60_000);

function firstOffsets(dir: string): number[] {
  return readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort().map((f) => Number(f.slice(0, 20)));
}

function copyOf(name: string, from = withSnapshots): { dir: string; segment: (i: number) => string; snapshot: (offset: number) => string; checkpoint: string } {
  const dir = path.join(work, name);
  cpSync(from, dir, { recursive: true });
  const offsets = firstOffsets(dir);
  return {
    dir,
    segment: (i) => path.join(dir, 'log', segmentFileName(offsets[i]!)),
    snapshot: (offset) => path.join(dir, 'snapshots', String(offset).padStart(20, '0')),
    checkpoint: path.join(dir, 'log', 'checkpoint.json'),
  };
}

async function refusal(dir: string): Promise<DamagedStore> {
  const error = await Store.open({ dir, module: memoryModule }).then(async (s) => {
    await s.close();
    return undefined;
  }, (e: unknown) => e);
  expect(error).toBeInstanceOf(DamagedStore);
  return error as DamagedStore;
}

/** Reopen after repair: the offset it recovers to, its state hash, the snapshot it loaded, whether the checkpoint matched. */
async function reopened(dir: string): Promise<{ lastOffset: number; stateHash: string; snapshotOffset: number; checkpointVerified: boolean }> {
  const store = await Store.open({ dir, module: memoryModule });
  try {
    return { lastOffset: store.lastOffset, stateHash: store.stateHash(), snapshotOffset: store.report.snapshotOffset, checkpointVerified: store.report.checkpointVerified };
  } finally {
    await store.close();
  }
}

/** The report, without its last line: where what moved aside is kept (store-repair.test.ts checks what is in it). */
async function repair(dir: string): Promise<string> {
  const r = await cli(['store', 'repair', dir]);
  expect(r.code, r.stderr).toBe(0);
  const kept = /kept in (\S+) \(nothing deleted\)\n$/.exec(r.stdout);
  expect(kept?.[1], r.stdout).toMatch(new RegExp(`^${path.join(dir, 'log', 'repair-')}\\d+$`));
  return r.stdout.slice(0, kept!.index);
}

describe.concurrent('store repair keeps what a snapshot and the intact log recover', () => {
  test('a flipped byte in the oldest segment, below snapshot 149: only that segment and snapshot 49 go aside, nothing is dropped, all 200 remain', async () => {
    const s = copyOf('flip-oldest');
    const bytes = readFileSync(s.segment(0));
    bytes[8000] = bytes[8000]! ^ 0xff;
    writeFileSync(s.segment(0), bytes);
    const refused = await refusal(s.dir);
    const offset = Number(/offset (\d+)\)$/.exec(refused.reason)![1]);
    expect(offset).toBeLessThan(49);
    const logFirst = firstOffsets(s.dir)[1]!;
    expect(await repair(s.dir)).toBe(
      `damage in ${s.segment(0)} at byte ${refused.position}: frame checksum mismatch (offset ${offset}); the damage lies below snapshot 00000000000000000149 (offset 149), which verifies, and the log from offset ${logFirst} on is intact through 199: the log below offset ${logFirst} was moved aside (the log must chain on from the snapshot), and nothing acknowledged was dropped\n`
      + 'dropped no transaction\n'
      + `moved aside: ${s.segment(0)}\n`
      + `moved aside: ${s.snapshot(49)}\n`);
    expect(await reopened(s.dir)).toEqual({ lastOffset: 199, stateHash: hashes[199], snapshotOffset: 149, checkpointVerified: true });
  });

  test('a zeroed header of the middle segment, below snapshot 149: the log below the last segment goes aside, nothing is dropped', async () => {
    const s = copyOf('header-middle');
    const [, second, third] = firstOffsets(s.dir);
    const bytes = readFileSync(s.segment(1));
    bytes.fill(0, 0, 24);
    writeFileSync(s.segment(1), bytes);
    expect(await repair(s.dir)).toBe(
      `damage in ${s.segment(1)} at byte 0: bad segment magic (offset ${second}); the damage lies below snapshot 00000000000000000149 (offset 149), which verifies, and the log from offset ${third} on is intact through 199: the log below offset ${third} was moved aside (the log must chain on from the snapshot), and nothing acknowledged was dropped\n`
      + 'dropped no transaction\n'
      + `moved aside: ${s.segment(0)}\n`
      + `moved aside: ${s.segment(1)}\n`
      + `moved aside: ${s.snapshot(49)}\n`);
    expect(await reopened(s.dir)).toEqual({ lastOffset: 199, stateHash: hashes[199], snapshotOffset: 149, checkpointVerified: true });
  });

  test('a zeroed header of the middle segment with no snapshot: cut there, every later segment goes aside, and the store opens at the cut', async () => {
    const s = copyOf('header-middle-no-snapshots', withoutSnapshots);
    const [, second] = firstOffsets(s.dir);
    const last = s.segment(2);
    const bytes = readFileSync(s.segment(1));
    bytes.fill(0, 0, 24);
    writeFileSync(s.segment(1), bytes);
    expect(await repair(s.dir)).toBe(
      `damage in ${s.segment(1)} at byte 0: bad segment magic\n`
      + `dropped ${200 - second!} transactions (offsets ${second}..199)\n`
      + `moved aside: ${s.segment(1)} from byte 0\n`
      + `moved aside: ${last}\n`
      + `moved aside: ${s.checkpoint}\n`);
    expect(readdirSync(path.join(s.dir, 'log')).filter((f) => f.endsWith('.log'))).toEqual([path.basename(s.segment(0))]);
    expect(await reopened(s.dir)).toEqual({ lastOffset: second! - 1, stateHash: hashesNoSnapshots[second! - 1], snapshotOffset: -1, checkpointVerified: false });
  });

  test('a stray copy of a segment under an offset inside it: only the copy goes aside, the report drops nothing, and all 200 remain', async () => {
    const s = copyOf('stray');
    const [, second, third] = firstOffsets(s.dir);
    const stray = path.join(s.dir, 'log', segmentFileName(second! + 30));
    copyFileSync(s.segment(1), stray);
    expect(third).toBeGreaterThan(second! + 30);
    expect(await repair(s.dir)).toBe(
      `damage in ${stray} at byte 0: ${path.basename(stray)} lies inside the offsets segment ${path.basename(s.segment(1))} holds, so it is no segment of this log (segment header says first offset ${second}, name says ${second! + 30}): moved aside whole; nothing acknowledged was dropped\n`
      + 'dropped no transaction\n'
      + `moved aside: ${stray}\n`);
    expect(readdirSync(path.join(s.dir, 'snapshots'))).toHaveLength(2);
    expect(await reopened(s.dir)).toEqual({ lastOffset: 199, stateHash: hashes[199], snapshotOffset: 149, checkpointVerified: true });
  });

  test('zeros after the intact frames of a sealed segment: only the zeros are cut, and all 200 remain', async () => {
    const s = copyOf('zeros-sealed');
    const [, , third] = firstOffsets(s.dir);
    const size = statSync(s.segment(1)).size;
    appendFileSync(s.segment(1), Buffer.alloc(4096));
    expect(await repair(s.dir)).toBe(
      `damage in ${s.segment(1)} at byte ${size}: zero run of 4096 bytes after the last frame of sealed segment ${path.basename(s.segment(1))} (offset ${third! - 1}), and the next segment goes on at offset ${third}: only the zeros were cut; nothing acknowledged was dropped\n`
      + 'dropped no transaction\n'
      + `moved aside: ${s.segment(1)} from byte ${size}\n`);
    expect(statSync(s.segment(1)).size).toBe(size);
    expect(await reopened(s.dir)).toEqual({ lastOffset: 199, stateHash: hashes[199], snapshotOffset: 149, checkpointVerified: true });
  });

  test('every segment lost: repair reopens from snapshot 149 and reports 150..199 dropped; the open no longer refuses', async () => {
    const s = copyOf('log-gone');
    for (let i = 0; i < 3; i++) rmSync(s.segment(i));
    expect((await refusal(s.dir)).message).toContain('store repair');
    expect(await repair(s.dir)).toBe(
      `damage in ${path.join(s.dir, 'log')} at byte 0: no segment is left in the log, but the clean-close checkpoint shows offsets through 199 were acknowledged; the store reopens from snapshot 00000000000000000149 (offset 149)\n`
      + 'dropped 50 transactions (offsets 150..199)\n'
      + `moved aside: ${s.snapshot(49)}\n`
      + `moved aside: ${s.checkpoint}\n`);
    expect(await reopened(s.dir)).toEqual({ lastOffset: 149, stateHash: hashes[149], snapshotOffset: 149, checkpointVerified: false });
  });

  test('every segment and every snapshot lost: repair refuses, says to restore from a backup, and changes nothing', async () => {
    const s = copyOf('all-gone');
    for (let i = 0; i < 3; i++) rmSync(s.segment(i));
    rmSync(path.join(s.dir, 'snapshots'), { recursive: true });
    const r = await cli(['store', 'repair', s.dir]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(
      `error: damaged store: ${path.join(s.dir, 'log')} at byte 0: no segment is left in the log and no snapshot verifies, but the clean-close checkpoint shows offsets 0..199 were acknowledged: there is nothing to recover them from; restore the store from a backup (\`ioboxx-memory restore\`), or put its segments or a valid snapshot back; repair changed nothing\n`); // the hint, which the message ends with, once
    expect(readdirSync(path.join(s.dir, 'log')).sort()).toEqual(['checkpoint.json']);
  });
});
