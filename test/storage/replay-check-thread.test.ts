/**
 * Open checks the frames of sealed segments on a worker thread while it replays (log-recovery.ts,
 * segment-checker.ts). The promise: the worker changes nothing a user can see. Same state and
 * hash as checking on the main thread, the same refusal for damage in a sealed segment, the same
 * torn-tail cut, and a worker that cannot start or dies leaves the open to the main thread.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { DamagedStore } from '../../storage/errors.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { LogRecovery } from '../../storage/log/log-recovery.js';
import { scanSegmentBytes, SegmentReader } from '../../storage/log/recovery.js';
import { SegmentChecker, type SegmentVerdict } from '../../storage/log/segment-checker.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { asAfterCrash } from '../support/crash-image.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-check-thread-'));
const segments = (dir: string) => readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort().map((f) => path.join(dir, 'log', f));
const threads = ['worker', 'main'] as const;

/** Puts, bumps and deletes over small segments; returns the hash at close. */
async function writeStore(dir: string, n: number): Promise<string> {
  const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 4096 });
  for (let i = 0; i < n; i++) {
    await store.call('put', { id: `o${i % 17}`, type: i % 2 ? 'odd' : 'even', n: i, attributes: { pad: 'x'.repeat(30) } }, testCaller);
    if (i % 5 === 0) await store.call('bump', { id: `o${i % 17}`, by: 2 }, testCaller);
    if (i % 7 === 3) await store.call('del', { id: `o${i % 17}` }, testCaller);
  }
  const hash = store.stateHash();
  await store.close();
  return hash;
}

async function openWith(dir: string, thread: 'worker' | 'main'): Promise<Store> {
  return Store.open({ dir, module: counterModule, segmentBytesMax: 4096, replayCheckThread: thread });
}

function flipBit(file: string, position: number): void {
  const buf = readFileSync(file);
  buf[position] = buf[position]! ^ 0x10;
  writeFileSync(file, buf);
}

describe('replay with frame checks on a worker thread', () => {
  test('a worker-checked replay reaches the state, hash and offsets of a main-thread one', async () => {
    const dir = tmp();
    const hash = await writeStore(dir, 150);
    expect(segments(dir).length).toBeGreaterThan(4);
    for (const thread of threads) {
      const store = await openWith(dir, thread);
      expect(store.stateHash(), thread).toBe(hash);
      expect(store.report.checkpointVerified, thread).toBe(true);
      expect(store.lastOffset, thread).toBeGreaterThan(150);
      await store.close();
    }
    // The log a worker-checked open took over takes writes on.
    const store = await openWith(dir, 'worker');
    const { offset } = await store.call('put', { id: 'after', type: 't', n: 1, attributes: {} }, testCaller);
    const after = store.stateHash();
    await store.close();
    const reopened = await openWith(dir, 'main');
    expect(reopened.lastOffset).toBe(offset);
    expect(reopened.stateHash()).toBe(after);
    await reopened.close();
  });

  test('one flipped bit in a sealed segment: both refuse with the same file, byte and reason', async () => {
    const dir = tmp();
    await writeStore(dir, 120);
    const victim = segments(dir)[2]!;
    flipBit(victim, 200);
    const errors = await Promise.all(threads.map(async (thread) => {
      const copy = tmp();
      cpSync(dir, copy, { recursive: true });
      return openWith(copy, thread).then(() => undefined, (e: unknown) => e);
    }));
    for (const error of errors) expect(error).toBeInstanceOf(DamagedStore);
    const [worker, main] = errors as [DamagedStore, DamagedStore];
    expect(worker.file.endsWith(path.basename(victim))).toBe(true);
    expect(worker.position).toBeLessThanOrEqual(200);
    const seen = (e: DamagedStore) => ({ file: path.basename(e.file), position: e.position, message: e.message.replaceAll(path.dirname(path.dirname(e.file)), 'DIR') });
    expect(seen(worker)).toEqual(seen(main));
  });

  test('a torn tail of the last segment: both cut it at the same byte and keep the same bytes aside', async () => {
    const dir = tmp();
    await writeStore(dir, 120);
    asAfterCrash(dir);
    const last = segments(dir).at(-1)!;
    flipBit(last, statSync(last).size - 10);
    const outcomes = [];
    for (const thread of threads) {
      const copy = tmp();
      cpSync(dir, copy, { recursive: true });
      const store = await openWith(copy, thread);
      const torn = store.report.torn!;
      outcomes.push({ hash: store.stateHash(), last: store.lastOffset, position: torn.position, bytes: torn.bytes, kept: readFileSync(torn.keptAt) });
      await store.close();
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
  });

  test('a broken chain of sealed segments refuses to open on the worker path too', async () => {
    const dir = tmp();
    await writeStore(dir, 120);
    const [, second, third] = segments(dir);
    // Drop a sealed segment: the next one starts past where the previous ends.
    cpSync(third!, second!);
    const error = await openWith(dir, 'worker').then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(DamagedStore);
  });
});

describe('segment checker', () => {
  async function checkAll(checker: SegmentChecker, dir: string): Promise<{ frames: number[][]; verdicts: SegmentVerdict[] }> {
    const files = segments(dir);
    const frames: number[][] = [];
    const verdicts: SegmentVerdict[] = [];
    let firstOffset = 0;
    for (const file of files) {
      const buf = await new SegmentReader(nodeFileLayer, true).read(file);
      const seen: number[] = [];
      await checker.check(buf, file, firstOffset, { frames: (p) => seen.push(...Array.from(p)), verdict: (v) => verdicts.push(v) });
      frames.push(seen);
      firstOffset += seen.length;
    }
    await checker.close();
    return { frames, verdicts };
  }

  async function expected(dir: string): Promise<number[][]> {
    const out: number[][] = [];
    let firstOffset = 0;
    for (const file of segments(dir)) {
      const { info } = scanSegmentBytes(readFileSync(file), file, firstOffset);
      out.push([...info.positions.slice(0)]);
      firstOffset += info.positions.length;
    }
    return out;
  }

  test('a worker that cannot start: the checks run in this thread with the same result', async () => {
    const dir = tmp();
    await writeStore(dir, 60);
    const checker = new SegmentChecker(new URL('./fixtures/no-such-worker.ts', import.meta.url));
    expect(await checker.started).toBe(false);
    const { frames, verdicts } = await checkAll(checker, dir);
    expect(frames).toEqual(await expected(dir));
    expect(verdicts.every((v) => v.problem === undefined)).toBe(true);
  });

  test('checks go to a started worker and give what this thread finds', async () => {
    const dir = tmp();
    await writeStore(dir, 60);
    const checker = new SegmentChecker();
    expect(await checker.started).toBe(true);
    const { frames } = await checkAll(checker, dir);
    expect(frames).toEqual(await expected(dir));
  });

  test('a worker that dies part-way: the rest is checked here and no frame is handed on twice', async () => {
    const dir = tmp();
    await writeStore(dir, 60);
    const checker = new SegmentChecker(new URL('./fixtures/dying-check-worker.ts', import.meta.url));
    expect(await checker.started).toBe(true);
    const { frames } = await checkAll(checker, dir);
    expect(frames).toEqual(await expected(dir));
  });

  test('an open whose worker cannot start replays on the main thread to the same hash', async () => {
    const dir = tmp();
    const hash = await writeStore(dir, 100);
    const recovery = await LogRecovery.begin(path.join(dir, 'log'), nodeFileLayer, {
      checkThread: 'worker',
      checkWorkerUrl: new URL('./fixtures/no-such-worker.ts', import.meta.url),
    });
    const offsets: number[] = [];
    const scanned = await recovery.replay(-1, (_buf, _position, offset) => offsets.push(offset));
    expect(offsets).toEqual(Array.from({ length: scanned.lastOffset + 1 }, (_, i) => i));
    expect(scanned.lastOffset).toBe(recovery.lastOffset);
    const store = await openWith(dir, 'main');
    expect(store.stateHash()).toBe(hash);
    await store.close();
  });
});
