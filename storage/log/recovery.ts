/**
 * The recovery rules and their pieces: an open runs them in log-recovery.ts; `store inspect`,
 * `repair`, backups and the store status use the segment scan below. Rules (DESIGN §4, invariant 5):
 *  - Only the last segment may end in a torn tail (short header, bad length, CRC mismatch,
 *    non-contiguous offset): it is cut there, the cut bytes kept aside in `torn-*.bin`. A torn
 *    tail holds only what a crash can leave written and not yet synced (unsyncedFramesMax,
 *    unsyncedBytesMax): valid frames found farther past the bad spot make it damage instead.
 *  - A run of zeros from the last good frame to the end of the last segment is its zero tail
 *    (zero-tail.ts): a clean end, kept for the writer to use again, not torn. A single non-zero
 *    byte in it makes the whole rest a torn tail as above.
 *  - Any bad frame in a sealed (non-last) segment is fatal: DamagedStore names file and byte. A
 *    zero run in a sealed segment too: rotation cuts the zero tail before sealing.
 *  - Segments must chain: each starts at the offset after the previous one's last frame.
 */
import * as path from 'node:path';
import { DamagedStore } from '../errors.js';
import { loopSliceCheckItems, type LoopSlices } from '../io/event-loop.js';
import type { FileLayer } from '../io/file-layer.js';
import { NotARegularFile } from '../io/file-refused.js';
import { checkFrame, decodeFrame, frameOffsetAt } from './frame.js';
import { decodeSegmentHeader, parseSegmentFileName, segmentFileBytesMax, segmentHeaderBytes } from './segment.js';
import { FramePositions } from './frame-positions.js';
import { isZeroRun } from './zero-tail.js';

export interface SegmentInfo {
  readonly file: string; // absolute path
  readonly firstOffset: number;
  /** Byte position of each frame, index = offset - firstOffset. */
  readonly positions: FramePositions;
  /** Bytes of valid content (header + frames). */
  end: number;
}

export interface ScannedLog {
  readonly segments: SegmentInfo[];
  /** Last valid offset, or firstOffset - 1 of the first segment when it is empty (-1 for a new log). */
  readonly lastOffset: number;
  readonly torn?: { file: string; position: number; bytes: number; reason: string; keptAt: string };
  /** Zeros after the last frame of the last segment (a clean end; the writer fills on from there). */
  readonly zeroTail?: { file: string; position: number; bytes: number };
}

/**
 * What a crash can leave written but not yet synced, so never acknowledged: the batches in flight
 * (store.ts asserts its group-commit limits fit). A bad frame followed by valid frames within
 * this reach may be a torn write; beyond it, acknowledged frames follow the bad one: damage.
 */
export const unsyncedFramesMax = 2 * 4096;
export const unsyncedBytesMax = 2 * 16 * 1024 * 1024;

export interface Damage {
  readonly file: string;
  readonly position: number;
  readonly reason: string;
  /** The offset the damaged frame should have had. */
  readonly offset: number;
}

/**
 * Reads whole segments into one buffer reused from file to file. Fresh memory is the dear part
 * of reading a log on these machines: measured here, reading a 64 MiB segment into a new buffer
 * costs 0.3-0.45 s of page faults, into a buffer already touched 25-40 ms. So an open reads every
 * segment through one reader, and each segment's bytes are valid only until the next read.
 */
export class SegmentReader {
  private buffer: Buffer = Buffer.alloc(0);

  /** `shared`: the buffer lives in shared memory, so a worker thread can check the same bytes (log-recovery.ts). */
  constructor(private readonly fl: FileLayer, private readonly shared = false) {}

  /** The whole file, in the reused buffer: valid until the next call. */
  async read(file: string): Promise<Buffer> {
    const handle = await this.fl.open(file, 'r').catch((error: unknown) => {
      // A directory or a FIFO named like a segment: say where, as for damage.
      if (error instanceof NotARegularFile) throw new DamagedStore(file, 0, `${error.kind} stands where this segment file should be`);
      throw error;
    });
    try {
      const size = await handle.size();
      if (size > segmentFileBytesMax) throw new DamagedStore(file, 0, `${size} bytes, over ${segmentFileBytesMax} (segmentFileBytesMax): not a segment this engine wrote`);
      if (size > this.buffer.length) this.buffer = this.shared ? Buffer.from(new SharedArrayBuffer(size)) : Buffer.allocUnsafeSlow(size);
      let done = 0;
      while (done < size) {
        const n = await handle.read(this.buffer, done, size - done, done);
        if (n === 0) break; // the file shrank while we read it: what is there is what we scan
        done += n;
      }
      return this.buffer.subarray(0, done);
    } finally {
      await handle.close();
    }
  }
}

export async function listSegments(logDir: string, fl: FileLayer): Promise<{ file: string; firstOffset: number }[]> {
  if (!(await fl.exists(logDir))) return [];
  const out: { file: string; firstOffset: number }[] = [];
  for (const name of await fl.readdir(logDir)) {
    const firstOffset = parseSegmentFileName(name);
    if (firstOffset !== undefined) out.push({ file: path.join(logDir, name), firstOffset });
  }
  return out.sort((a, b) => a.firstOffset - b.firstOffset);
}

export interface ScannedSegment {
  readonly info: SegmentInfo;
  readonly problem?: Damage;
  readonly headerBad?: string;
  readonly zeroTail?: true;
}

/**
 * Scan one segment's bytes; returns frame positions and the first problem, if any. A problem that
 * is a run of zeros to the end of the bytes says so (`zeroTail`): the caller decides, since that
 * is a clean end only in the last segment. `onFrames(from)` is called each time `batchFrames`
 * more frames passed (positions[from..] are new), and once at the end for the rest.
 */
export function scanSegmentBytes(
  buf: Buffer,
  file: string,
  expectedFirst: number,
  onFrames?: (positions: FramePositions, from: number) => void,
  batchFrames = 4096,
): ScannedSegment {
  const scanned = new SegmentScan(buf, file, expectedFirst).step(Number.POSITIVE_INFINITY, onFrames, batchFrames)!;
  if (onFrames && scanned.info.positions.length % batchFrames !== 0) {
    onFrames(scanned.info.positions, scanned.info.positions.length - (scanned.info.positions.length % batchFrames));
  }
  return scanned;
}

/** scanSegmentBytes with a turn of the event loop whenever `slices` say so (an open's scan of a 64 MiB segment). */
export async function scanSegmentBytesInSlices(buf: Buffer, file: string, expectedFirst: number, slices: LoopSlices): Promise<ScannedSegment> {
  const scan = new SegmentScan(buf, file, expectedFirst);
  for (;;) {
    const scanned = scan.step(loopSliceCheckItems);
    if (scanned) return scanned;
    if (slices.due(0)) await slices.turn();
  }
}

/** A scan of one segment's frames that can stop after some frames and go on later (scanSegmentBytes, scanSegmentBytesInSlices). */
class SegmentScan {
  private readonly info: SegmentInfo;
  private position = segmentHeaderBytes;
  private expected: number;
  /** Set once the scan ended (at the header, a problem, or the end of the bytes). */
  private result: ScannedSegment | undefined;

  constructor(private readonly buf: Buffer, private readonly file: string, expectedFirst: number) {
    this.expected = expectedFirst;
    this.info = { file, firstOffset: expectedFirst, positions: new FramePositions(), end: 0 };
    const header = decodeSegmentHeader(buf);
    if (!header.ok) {
      this.result = { info: this.info, headerBad: header.reason, problem: { file, position: 0, reason: header.reason, offset: expectedFirst } };
    } else if (header.firstOffset !== expectedFirst) {
      const reason = `segment header says first offset ${header.firstOffset}, name says ${expectedFirst}`;
      this.result = { info: this.info, headerBad: reason, problem: { file, position: 0, reason, offset: expectedFirst } };
    }
  }

  /** Scan up to `framesMax` more frames: the outcome once the segment ended, else undefined (call again). */
  step(framesMax: number, onFrames?: (positions: FramePositions, from: number) => void, batchFrames = 4096): ScannedSegment | undefined {
    if (this.result) return this.result;
    const { buf, file, info } = this;
    let position = this.position;
    let expected = this.expected;
    for (let n = 0; n < framesMax; n++) {
      if (position >= buf.length) {
        info.end = position;
        return (this.result = { info });
      }
      const bytes = checkFrame(buf, position);
      if (typeof bytes === 'string') {
        if (isZeroRun(buf, position)) {
          const reason = `zero run of ${buf.length - position} bytes after the last frame`;
          return (this.result = { info: { ...info, end: position }, problem: { file, position, reason, offset: expected }, zeroTail: true });
        }
        return (this.result = { info: { ...info, end: position }, problem: { file, position, reason: bytes, offset: expected } });
      }
      const offset = frameOffsetAt(buf, position);
      if (offset !== expected) {
        return (this.result = {
          info: { ...info, end: position },
          problem: { file, position, reason: `frame offset ${offset} where ${expected} was expected`, offset: expected },
        });
      }
      info.positions.push(position);
      if (onFrames && info.positions.length % batchFrames === 0) onFrames(info.positions, info.positions.length - batchFrames);
      position += bytes;
      expected++;
    }
    this.position = position;
    this.expected = expected;
    return undefined;
  }
}

/** Segments must chain: each starts at the offset after the previous one's last frame. */
export function checkChain(previous: SegmentInfo | undefined, file: string, firstOffset: number): void {
  if (!previous) return;
  const expectedFirst = previous.firstOffset + previous.positions.length;
  if (firstOffset !== expectedFirst) {
    throw new DamagedStore(file, 0, `segment starts at offset ${firstOffset} but the previous one ends before ${expectedFirst}`);
  }
}

/** The error for a bad frame in a sealed segment: the store refuses to open. */
export function sealedDamage(problem: Damage): DamagedStore {
  return new DamagedStore(problem.file, problem.position, `${problem.reason} (sealed segment, offset ${problem.offset})`);
}

/**
 * What the scan of the last segment means: the segment as it stays (none when its header is
 * bad), and a zero tail (a clean end) or a torn tail to cut, with the file it is kept in.
 */
export function lastSegmentOutcome(
  logDir: string,
  scanned: ScannedSegment,
  buf: Buffer,
): { info?: SegmentInfo; torn?: NonNullable<ScannedLog['torn']>; zeroTail?: NonNullable<ScannedLog['zeroTail']> } {
  const { info, problem } = scanned;
  const bytes = buf.length;
  if (!problem) return { info };
  if (scanned.zeroTail) return { info, zeroTail: { file: info.file, position: problem.position, bytes: bytes - problem.position } };
  if (!scanned.headerBad) {
    const after = resync(buf, problem.position + 1);
    if (after && (after.lastOffset - problem.offset >= unsyncedFramesMax || after.lastEnd - problem.position > unsyncedBytesMax)) {
      throw new DamagedStore(problem.file, problem.position,
        `${problem.reason} (offset ${problem.offset}), and valid frames follow up to offset ${after.lastOffset} at byte ${after.lastEnd}: farther than a crash can leave unsynced writes, so acknowledged transactions are behind the damage`);
    }
  }
  // Torn tail of the last segment: only unacknowledged work can be there.
  const cutAt = scanned.headerBad ? 0 : problem.position;
  const keptAt = path.join(logDir, `torn-${String(info.firstOffset + info.positions.length).padStart(20, '0')}-${bytes - cutAt}.bin`);
  const torn = { file: info.file, position: cutAt, bytes: bytes - cutAt, reason: problem.reason, keptAt };
  return scanned.headerBad ? { torn } : { info, torn };
}

/** Keep the torn bytes aside (durably), then cut them: the whole file when its header is bad. `buf` is the segment's bytes. */
export async function cutTornTail(fl: FileLayer, torn: NonNullable<ScannedLog['torn']>, buf: Buffer): Promise<void> {
  await keepAsideAndCut(fl, torn.file, buf.subarray(0, torn.position + torn.bytes), torn.position, torn.keptAt);
}

/**
 * Copy `buf` (the file's bytes) from `position` on into `keptAt`, durably, then cut the file
 * there, durably: at 0 (only a bad header cuts there, frames start after it) the file goes.
 */
export async function keepAsideAndCut(fl: FileLayer, file: string, buf: Buffer, position: number, keptAt: string): Promise<void> {
  await fl.writeFileDurable(keptAt, buf.subarray(position));
  await cutFileDurably(fl, file, position);
}

/**
 * Cut `file` at `position` and fdatasync the cut, through a file description of its own (one
 * opened now hears only writeback errors from now on, not one an older description was already
 * told of); at 0 the file goes, and its directory is synced.
 */
export async function cutFileDurably(fl: FileLayer, file: string, position: number): Promise<void> {
  if (position === 0) {
    await fl.unlink(file);
    await fl.fsyncDir(path.dirname(file));
    return;
  }
  const handle = await fl.open(file, 'r+');
  try {
    await handle.truncate(position);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Look for valid frames past a damaged spot, byte by byte: the highest offset found and where the farthest one ends. */
export function resync(buf: Buffer, from: number): { lastOffset: number; lastEnd: number } | undefined {
  let found: { lastOffset: number; lastEnd: number } | undefined;
  for (let p = from; p + 16 <= buf.length; p++) {
    if (buf[p] === 0 && isZeroRun(buf, p)) break; // the zeros ahead of the writer: nothing follows
    const f = decodeFrame(buf, p);
    if (f.ok) {
      found = { lastOffset: Math.max(found?.lastOffset ?? -1, f.offset), lastEnd: p + f.bytes };
      p += f.bytes - 1;
    }
  }
  return found;
}
