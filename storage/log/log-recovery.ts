/**
 * The log side of an open: the rules of recovery.ts, in an order that lets the frame checks
 * of one segment run on a second thread while the main thread replays the segment before it.
 *
 *  1. `begin`: the last segment is read and scanned first. Its end (or its torn tail) fixes the
 *     log's last offset, which the choice of snapshot needs. Nothing is cut yet.
 *  2. `replay`: the sealed segments are checked in order (segment-checker.ts) and each good frame
 *     past the snapshot is handed to `apply` as soon as it is checked (with a worker: while the
 *     next segment is read); then the last segment's frames. Each segment is read once. Any bad frame or broken chain in a sealed segment
 *     throws DamagedStore naming file and byte (the open fails; the partial state is dropped).
 *  3. Only when every sealed segment passed is a torn tail kept aside and cut (cutTornTail).
 *
 * The result is the ScannedLog of the files: every segment, the last offset, the torn or zero tail.
 */
import { availableParallelism } from 'node:os';
import { DamagedStore } from '../errors.js';
import { LoopSlices } from '../io/event-loop.js';
import type { FileLayer } from '../io/file-layer.js';
import {
  checkChain,
  cutTornTail,
  lastSegmentOutcome,
  listSegments,
  scanSegmentBytesInSlices,
  sealedDamage,
  SegmentReader,
  type ScannedLog,
  type SegmentInfo,
} from './recovery.js';
import { FramePositions } from './frame-positions.js';
import { SegmentChecker } from './segment-checker.js';

/**
 * Below this many bytes in the first sealed segment the checks stay on the main thread: a
 * worker costs tens of ms to start (more from TypeScript sources), about what checking 8 MiB of
 * small frames costs.
 */
export const checkWorkerBytesMin = 8 * 1024 * 1024;
/** Cores the machine must have before 'auto' checks on a worker (see newChecker). */
export const checkWorkerCoresMin = 3;

/** Receives each frame to replay: its position in `buf` (a segment's bytes, valid during the call) and its offset. */
export type FrameApplier = (buf: Buffer, position: number, offset: number, file: string) => void;

export interface LogRecoveryOptions {
  /**
   * 'auto': a worker when the first sealed segment holds at least checkWorkerBytesMin bytes and the
   * machine has checkWorkerCoresMin cores; checks run here until it has started. 'worker': always one, and checks wait for it to start (tests).
   */
  readonly checkThread?: 'auto' | 'worker' | 'main';
  /** Tests: another worker module (one that fails, to prove the fallback). */
  readonly checkWorkerUrl?: URL;
  /** Gives the event loop turns while segments are scanned on this thread and the last segment's frames applied (default: its own). */
  readonly slices?: LoopSlices;
  /** Segments checked so far, of all. */
  readonly onProgress?: (done: number, total: number) => void;
}

interface LastSegment {
  readonly file: string;
  readonly firstOffset: number;
  /** Bytes the scan read: the re-read for replay must find them again. */
  readonly bytes: number;
  /** The scanned bytes themselves, still whole in the reader's buffer when no sealed segment is read after them. */
  readonly scannedBuf: Buffer;
  readonly outcome: ReturnType<typeof lastSegmentOutcome>;
}

export class LogRecovery {
  private constructor(
    private readonly logDir: string,
    private readonly fl: FileLayer,
    private readonly files: readonly { file: string; firstOffset: number }[],
    private readonly last: LastSegment | undefined,
    private readonly options: LogRecoveryOptions & { readonly slices: LoopSlices },
    /** Two buffers in shared memory: the worker checks one segment while the next is read into the other. */
    private readonly readers: readonly [SegmentReader, SegmentReader],
    /** The first sealed segment's bytes, read while the last one is scanned and the snapshot loads. */
    private readonly firstRead: Promise<Buffer> | undefined,
    private readonly checker: SegmentChecker | undefined,
  ) {}

  static async begin(logDir: string, fl: FileLayer, given: LogRecoveryOptions = {}): Promise<LogRecovery> {
    const options = { ...given, slices: given.slices ?? new LoopSlices() };
    const files = await listSegments(logDir, fl);
    const lastFile = files[files.length - 1];
    const firstSealed = files.length > 1 ? files[0]! : undefined;
    const checker = firstSealed ? newChecker(options, await fileBytes(fl, firstSealed.file)) : undefined;
    // With a worker, two buffers: it checks one segment while the next is read into the other. Without
    // one, a single buffer read segment after segment: fresh memory costs more than the overlap gains.
    const reader = new SegmentReader(fl, true);
    const readers = [reader, checker?.threaded ? new SegmentReader(fl, true) : reader] as const;
    if (!lastFile) return new LogRecovery(logDir, fl, files, undefined, options, readers, undefined, undefined);
    // Started first with a worker, so they overlap the last segment's scan and the snapshot load: the worker's start and the first sealed read.
    const firstRead = firstSealed && readers[0] !== readers[1] ? readers[0].read(firstSealed.file) : undefined;
    firstRead?.catch(() => undefined); // awaited by replay; an open that fails before must not leave it unhandled
    try {
      const buf = await readers[1].read(lastFile.file);
      const outcome = lastSegmentOutcome(logDir, await scanSegmentBytesInSlices(buf, lastFile.file, lastFile.firstOffset, options.slices), buf);
      return new LogRecovery(logDir, fl, files, { ...lastFile, bytes: buf.length, scannedBuf: buf, outcome }, options, readers, firstRead, checker);
    } catch (error) {
      await checker?.close();
      throw error;
    }
  }

  /** Stop the worker (replay does it when it ends; an open that fails before replay must call this). */
  async close(): Promise<void> {
    await this.checker?.close();
  }

  /** True when a segment remains (a last segment with a bad header goes). */
  get logExists(): boolean {
    return this.files.length > 1 || this.last?.outcome.info !== undefined;
  }

  /** First offset of the log (0 when there is none). */
  get logFirst(): number {
    return this.logExists ? this.files[0]!.firstOffset : 0;
  }

  /** Last valid offset (-1 for a new log). Sealed segments are checked to chain up to it during replay. */
  get lastOffset(): number {
    const last = this.last;
    if (!last) return -1;
    const info = last.outcome.info;
    if (info) return info.firstOffset + info.positions.length - 1;
    return this.files.length > 1 ? last.firstOffset - 1 : -1;
  }

  /** Where the log will end once opened: the torn tail about to be cut (with why), or the last segment's end. */
  get end(): { file: string; position: number; torn?: string } {
    const last = this.last;
    if (!last) return { file: this.logDir, position: 0 };
    const { info, torn } = last.outcome;
    if (torn) return { file: torn.file, position: torn.position, torn: torn.reason };
    return { file: last.file, position: info?.end ?? 0 };
  }

  /** Check every segment and hand each frame past `afterOffset` to `apply`, in offset order. */
  async replay(afterOffset: number, apply: FrameApplier): Promise<ScannedLog> {
    const segments: SegmentInfo[] = [];
    const total = this.files.length;
    const last = this.last;
    if (!last) return { segments, lastOffset: -1 };
    const sealed = this.files.slice(0, -1);
    const { readers, checker } = this;
    // The first error any segment met: later segments hand on no frame once it is set.
    let failure: unknown;
    try {
      if (this.options.checkThread === 'worker') await checker?.started;
      // Reads in flight: segment 0's started in begin; segment 1's buffer is free now (it held the last segment's scan).
      const single = readers[0] === readers[1];
      const reads: (Promise<Buffer> | undefined)[] = single ? [] : [this.firstRead, sealed.length > 1 ? readers[1].read(sealed[1]!.file) : undefined];
      reads[1]?.catch(() => undefined); // awaited in its round; a throw before then must not go unhandled
      const checks: Promise<void>[] = [];
      for (let i = 0; i < sealed.length; i++) {
        const { file, firstOffset } = sealed[i]!;
        const buf = await (reads[i] ??= readers[0].read(file)); // single buffer: read when the one before is applied
        const info: SegmentInfo = { file, firstOffset, positions: new FramePositions(), end: 0 };
        let chained = false;
        // Runs before this segment's first frame or verdict is taken: every earlier segment is settled by then.
        const beforeUse = (): void => {
          if (failure !== undefined) throw failure;
          if (chained) return;
          chained = true;
          try {
            checkChain(segments[segments.length - 1], file, firstOffset);
          } catch (error) {
            throw (failure = error);
          }
        };
        const check = checker!.check(buf, file, firstOffset, {
          frames: (positions) => {
            beforeUse();
            for (let k = 0; k < positions.length; k++) {
              const position = positions[k]!;
              const offset = firstOffset + info.positions.length;
              info.positions.push(position);
              if (offset > afterOffset) {
                try {
                  apply(buf, position, offset, file);
                } catch (error) {
                  throw (failure = error);
                }
              }
            }
          },
          verdict: (verdict) => {
            beforeUse();
            if (verdict.problem) throw (failure = sealedDamage(verdict.problem));
            info.end = verdict.end;
            segments.push(info);
            this.options.onProgress?.(segments.length, total);
          },
        });
        check.catch(() => undefined); // awaited in order below; an earlier failure may leave it unawaited
        checks.push(check);
        // Segment i-1 must be fully applied before its buffer takes segment i+1.
        if (single) {
          await check;
        } else if (i >= 1) {
          await checks[i - 1];
          const next = i + 1 < sealed.length ? readers[(i + 1) % 2]!.read(sealed[i + 1]!.file) : undefined;
          next?.catch(() => undefined);
          reads[i + 1] = next;
        }
      }
      if (sealed.length > 0) await checks[sealed.length - 1];
      checkChain(segments[segments.length - 1], last.file, last.firstOffset);
      const { info, torn, zeroTail } = last.outcome;
      // A log of one segment (most tenants) was read by the scan in begin: its buffer took nothing since.
      const buf = sealed.length === 0 ? last.scannedBuf : await readers[sealed.length % 2]!.read(last.file);
      if (buf.length < last.bytes) throw new DamagedStore(last.file, buf.length, `segment shrank to ${buf.length} bytes after the scan found ${last.bytes}`);
      if (info) {
        const slices = this.options.slices;
        for (let k = 0; k < info.positions.length; k++) {
          const offset = info.firstOffset + k;
          if (offset > afterOffset) apply(buf, info.positions.at(k), offset, last.file);
          if (slices.due(k + 1)) await slices.turn();
        }
        segments.push(info);
      }
      this.options.onProgress?.(total, total);
      if (torn) await cutTornTail(this.fl, torn, buf);
      const end = segments[segments.length - 1];
      const lastOffset = end ? end.firstOffset + end.positions.length - 1 : -1;
      return { segments, lastOffset, ...(torn ? { torn } : {}), ...(zeroTail ? { zeroTail } : {}) };
    } finally {
      await this.close();
    }
  }
}

function newChecker(options: LogRecoveryOptions & { readonly slices: LoopSlices }, firstSealedBytes: number): SegmentChecker {
  const mode = options.checkThread ?? 'auto';
  // A worker only when a core is left for it besides the main thread and the GC and I/O helpers:
  // on the 2-core VM, A/B 1M-frame opens (load 2-5) moved 0.4-1 s of CPU off the main thread but
  // took 1-2 s more wall time, the worker starting slowly and checking at a third of its idle speed.
  const threaded = mode === 'worker' || (mode === 'auto' && firstSealedBytes >= checkWorkerBytesMin && availableParallelism() >= checkWorkerCoresMin);
  return new SegmentChecker(threaded ? (options.checkWorkerUrl ?? undefined) : false, options.slices);
}

async function fileBytes(fl: FileLayer, file: string): Promise<number> {
  const handle = await fl.open(file, 'r');
  try {
    return await handle.size();
  } finally {
    await handle.close();
  }
}
