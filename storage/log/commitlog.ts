/**
 * The commitlog of one store: sealed segments plus the active one. Appends are positional
 * (`writev` at a tracked position, never O_APPEND) so a failed write can be cut back. The active
 * segment keeps zeros ahead of its written end (zero-tail.ts): frames overwrite them, so most
 * fdatasyncs have no size change or block allocation to journal. The next segment is made ahead,
 * in the background and zeroed whole (prepared-segment.ts), so a rotation does not create and
 * fill one in line, and the segment's batches write no zeros of their own.
 */
import { fstatSync } from 'node:fs';
import * as path from 'node:path';
import { DamagedStore } from '../errors.js';
import type { FileHandleLike, FileLayer } from '../io/file-layer.js';
import { decodeFrame, frameHeaderBytes, frameTrailerBytes } from './frame.js';
import { FramePositions } from './frame-positions.js';
import { cutFileDurably, type ScannedLog, type SegmentInfo } from './recovery.js';
import { activatePreparedSegment, discardPreparedSegment, nextSegmentDue, prepareSegment, removeLeftoverPreparedSegment, type PreparedSegment } from './prepared-segment.js';
import { segmentBytesTarget, segmentHeaderBytes } from './segment.js';
import { inlineSyncDone, poolSyncSettled, poolSyncStarted, threadIdleFor } from './inline-sync.js';
import { zeroFillDue, zeros } from './zero-tail.js';

/** How a fdatasync of the active segment ended. */
export interface SyncOutcome {
  readonly datasyncError?: unknown;
  readonly datasyncMs: number;
}

/** Frames written to the active segment and not yet recorded as durable. */
export interface WrittenFrames {
  readonly segment: SegmentInfo;
  readonly firstOffset: number;
  readonly start: number;
  readonly lengths: readonly number[];
  readonly writeMs: number;
}

/**
 * The active segment's file handles: one writes (and syncs), a second only syncs. Why two: a
 * page's writeback error is reported once per open file description, to the first fdatasync on
 * it that checks. With batch N's and N+1's fdatasyncs running at once on one description, N+1's
 * could take the error of N's pages and N's return success: N acknowledged, its frames lost.
 * On two descriptions each fdatasync hears every error since its own last check (Linux errseq).
 */
interface ActiveSegment {
  readonly writer: FileHandleLike;
  readonly syncer: FileHandleLike;
  /** Which handle each running fdatasync has: at most one per handle. */
  readonly syncing: [boolean, boolean];
}

export class Commitlog {
  private active: ActiveSegment | undefined;
  /** Byte after the last written frame of the active segment (>= its durable end). */
  private writtenEnd: number;
  /** Byte after the zeros written ahead of the active segment's frames (>= writtenEnd). */
  private zeroedEnd: number;
  /** A fill failed (disk full): this segment goes on by appending; the next one fills again. */
  private zeroFillOff = false;
  private nextWriteOffsetValue: number;
  /** The next segment being made ahead (undefined when its preparation failed: rotation makes it in line). */
  private preparing: Promise<PreparedSegment | undefined> | undefined;
  /** Closing: no next segment is made, and one being made stops between its fills. */
  private closing = false;
  /** Rotation waits for the segment being made: it stops between its fills and is taken as zeroed so far. */
  private rotationWaiting = false;
  /** The active segment was made ahead, zeroed whole (prepared-segment.ts): its batches write no zeros. */
  private activeWhole = false;
  /** The next segment is made, zeroed whole: an active segment that is not whole gives way to it now. */
  private nextWholeReady = false;

  private constructor(
    readonly dir: string,
    private readonly fl: FileLayer,
    readonly segments: SegmentInfo[],
    private nextOffsetValue: number,
    private readonly segmentBytesMax: number,
    zeroTailBytes: number,
  ) {
    this.writtenEnd = segments.length > 0 ? segments[segments.length - 1]!.end : 0;
    this.zeroedEnd = this.writtenEnd + zeroTailBytes;
    // Zeros to its end, left by a crash: a segment made ahead (prepared-segment.ts), and it stays one.
    this.activeWhole = zeroTailBytes > 0 && this.zeroedEnd >= segmentBytesMax;
    this.nextWriteOffsetValue = nextOffsetValue;
  }

  /** Take over a scanned (recovered) log; creates the first segment for an empty log. */
  static async open(dir: string, fl: FileLayer, scanned: ScannedLog, firstOffsetIfEmpty: number, segmentBytesMax = segmentBytesTarget): Promise<Commitlog> {
    const nextOffset = scanned.segments.length === 0 ? firstOffsetIfEmpty : scanned.lastOffset + 1;
    // The zeros a crash left after the last frame are used again (the scan proved them zeros).
    const last = scanned.segments[scanned.segments.length - 1];
    const zeroTailBytes = last && scanned.zeroTail?.file === last.file ? scanned.zeroTail.bytes : 0;
    const log = new Commitlog(dir, fl, scanned.segments, nextOffset, segmentBytesMax, zeroTailBytes);
    await removeLeftoverPreparedSegment(fl, dir);
    if (log.segments.length === 0) await log.createSegment(nextOffset);
    else log.active = await openActive(fl, log.last.file, await fl.open(log.last.file, 'r+'));
    return log;
  }

  get nextOffset(): number {
    return this.nextOffsetValue;
  }

  get firstOffset(): number {
    return this.segments[0]!.firstOffset;
  }

  private get last(): SegmentInfo {
    return this.segments[this.segments.length - 1]!;
  }

  /**
   * True when the active segment file has no name left (its directory or the file was deleted
   * under the open store): frames written to it now are durable in an inode nothing reaches.
   */
  get activeUnlinked(): boolean {
    // A file layer without descriptors (the read-only overlay) keeps its files in memory: none to lose.
    return this.active !== undefined && this.active.writer.fd >= 0 && fstatSync(this.active.writer.fd).nlink === 0;
  }

  /**
   * True when the next write should go to a new segment: the active one is full (counting frames
   * written, durable or not), or it was made in line and a segment made ahead, zeroed whole, is
   * ready to take over (prepared-segment.ts).
   */
  get wantsRotation(): boolean {
    return (this.writtenEnd >= this.segmentBytesMax || (this.nextWholeReady && !this.activeWhole)) && this.writtenEnd > segmentHeaderBytes;
  }

  /** Offset the next written frame must have (written frames may not be durable yet). */
  get nextWriteOffset(): number {
    return this.nextWriteOffsetValue;
  }

  /** True while written frames wait for their fdatasync (and `commit`). */
  get hasUnsynced(): boolean {
    return this.writtenEnd !== this.last.end;
  }

  /**
   * Append, step 1: one writev of `frames` (offsets nextWriteOffset, +1, ...) right after
   * everything written so far (durable or not), on the calling thread: a copy into the page
   * cache, so the batch's fdatasync can start in the same tick. On error the segment is cut
   * back to where this write began (earlier writes stay) and the error rethrown. Pipelined use:
   * write batch N+1 while batch N's fdatasync is in flight, then `sync` again; `commit` each
   * batch, in order, once a sync that started after its write succeeded. When the zeros ahead run
   * low, a fill is written right after the frames: the batch's fdatasync carries it.
   */
  write(frames: readonly Buffer[], count: number): WrittenFrames {
    if (frames.length !== count || count === 0) throw new Error(`commitlog write: ${frames.length} frames for count ${count}`);
    const segment = this.last;
    const handle = this.active!.writer;
    const start = this.writtenEnd;
    const writeStartMs = performance.now();
    try {
      handle.writevSync(frames, start);
    } catch (error) {
      // Cut back before anything else writes here: the next write starts at `start` again.
      try {
        handle.truncateSync(start);
        this.zeroedEnd = start; // the zeros after `start` went with the cut
      } catch {
        // The next write overwrites the partial bytes; recovery cuts any left past the durable end.
      }
      throw error;
    }
    const lengths = new Array<number>(count);
    let end = start;
    for (let i = 0; i < count; i++) end += lengths[i] = frames[i]!.length;
    this.writtenEnd = end;
    this.zeroedEnd = Math.max(this.zeroedEnd, end);
    this.fillZeros(handle);
    this.prepareNextIfDue();
    const firstOffset = this.nextWriteOffsetValue;
    this.nextWriteOffsetValue += count;
    return { segment, firstOffset, start, lengths, writeMs: performance.now() - writeStartMs };
  }

  /**
   * Keep zeros ahead of the written end, on this thread: positional writes on one thread cannot
   * overlap (an asynchronous fill could land on frames written after it began). A failed fill
   * (disk full) loses nothing: the frames before it are written, the bytes it wrote are zeros,
   * and this segment simply goes on appending. The store's call does not fail for it.
   */
  private fillZeros(handle: FileHandleLike): void {
    if (this.zeroFillOff) return;
    const fill = zeroFillDue(this.writtenEnd, this.zeroedEnd, this.segmentBytesMax);
    if (!fill) return;
    // Set first: after a failed fill the file may hold some of its zeros, which close and rotation cut.
    this.zeroedEnd = fill.position + fill.bytes;
    try {
      handle.writevSync([zeros(fill.bytes)], fill.position);
    } catch {
      this.zeroFillOff = true;
    }
  }

  /** Start making the next segment once the active one holds busySegmentBytes of frames (nextSegmentDue); a failure only means rotation makes it in line. */
  private prepareNextIfDue(): void {
    if (this.preparing || this.closing || !nextSegmentDue(this.writtenEnd, this.segmentBytesMax)) return;
    // Zeroed whole (no fills on the commit path), unless the log closes or rotates meanwhile.
    this.preparing = prepareSegment(this.fl, this.dir, this.segmentBytesMax, { stopped: () => this.closing || this.rotationWaiting }).then(
      (prepared) => {
        this.nextWholeReady = prepared.whole;
        return prepared;
      },
      () => undefined,
    );
  }

  /**
   * fdatasync of the active segment on the thread pool: covers every write that completed before
   * it started. At most two at once, each on a handle of its own (ActiveSegment). Never rejects.
   */
  async sync(): Promise<SyncOutcome> {
    const active = this.active!;
    const slot = active.syncing[0] ? 1 : 0;
    const datasyncStartMs = performance.now();
    if (active.syncing[slot]) {
      // The store keeps at most two batches in flight: a third is a bug, and fails the store rather than share a description.
      return { datasyncError: new Error('commitlog: a third fdatasync while two are running'), datasyncMs: 0 };
    }
    active.syncing[slot] = true;
    poolSyncStarted(this);
    try {
      await (slot === 0 ? active.writer : active.syncer).datasync();
    } catch (datasyncError) {
      return { datasyncError, datasyncMs: performance.now() - datasyncStartMs };
    } finally {
      active.syncing[slot] = false;
      poolSyncSettled();
    }
    return { datasyncMs: performance.now() - datasyncStartMs };
  }

  /**
   * The same fdatasync on this thread (inline-sync.ts): no hand-off to the pool and back. Only
   * when `threadIdle`; the caller checks its own side (nothing else in flight). Never throws.
   */
  syncInline(): SyncOutcome {
    const datasyncStartMs = performance.now();
    inlineSyncDone(this);
    const active = this.active!;
    try {
      // Nothing else syncs now (the store's side of the inline rule): either handle hears every error.
      if (active.syncing[0] || active.syncing[1]) throw new Error('commitlog: an inline fdatasync while one runs on the pool');
      active.writer.datasyncSync();
    } catch (datasyncError) {
      return { datasyncError, datasyncMs: performance.now() - datasyncStartMs };
    }
    return { datasyncMs: performance.now() - datasyncStartMs };
  }

  /** True when no commitlog of this thread has a fdatasync on the pool and this one synced last. */
  get threadIdle(): boolean {
    return threadIdleFor(this);
  }

  /** Record written frames as durable (after a successful sync that began after their write), in write order. */
  commit(written: WrittenFrames): void {
    const segment = written.segment;
    if (segment !== this.last || written.start !== segment.end || written.firstOffset !== this.nextOffsetValue) {
      throw new Error(`commitlog commit out of order: frames at byte ${written.start} of ${segment.file}, durable end ${segment.end}`);
    }
    let position = written.start;
    for (const length of written.lengths) {
      segment.positions.push(position);
      position += length;
    }
    segment.end = position;
    this.nextOffsetValue += written.lengths.length;
  }

  /**
   * After a failed fdatasync, before anyone is told: cut every frame written past the durable
   * end off the log, durably, so the next open cannot replay a transaction whose caller heard it
   * failed. They are all in the active segment (a rotation waits until all of it is durable, so
   * no segment exists past it). `unsynced` (those frames, in write order) is kept aside first in
   * `not-applied-<first offset>-<bytes>.bin` for the operator, where the disk still takes it; a
   * failed copy does not stop the cut (nothing acknowledged is in it). Throws when the cut or its
   * fdatasync fails: then whether the frames are durable is unknown. Afterwards the log is only
   * closed (the store refuses writes until reopened).
   */
  async cutUnsynced(unsynced: readonly Buffer[]): Promise<void> {
    const segment = this.last;
    const bytes = unsynced.reduce((sum, frame) => sum + frame.length, 0);
    if (bytes !== this.writtenEnd - segment.end) {
      throw new Error(`commitlog cut: ${bytes} bytes of frames given, ${this.writtenEnd - segment.end} written past the durable end`);
    }
    if (bytes > 0) {
      const keptAt = path.join(this.dir, `not-applied-${String(this.nextOffsetValue).padStart(20, '0')}-${bytes}.bin`);
      await this.fl.writeFileDurable(keptAt, unsynced).catch(() => undefined);
    }
    await cutFileDurably(this.fl, segment.file, segment.end);
    this.writtenEnd = this.zeroedEnd = segment.end;
    this.nextWriteOffsetValue = this.nextOffsetValue;
  }

  /** Seal the active segment (every frame of it already synced and committed) and start a new one. */
  async rotate(): Promise<void> {
    if (this.hasUnsynced) throw new Error('commitlog rotate with frames not yet durable');
    const sealed = this.active;
    // A sealed segment ends at its last frame (a zero run in one is damage): cut, durably, before
    // the next segment exists. The cut segment is still a good active one if creating fails.
    if (sealed) await this.cutZeroTail(sealed.writer);
    // Create first: if that fails (disk full) the active segment stays usable.
    await this.createSegment(this.nextOffsetValue);
    if (sealed) await closeActive(sealed);
  }

  /** Cut the active segment back to its written end (every frame of it durable) and sync the cut. */
  private async cutZeroTail(handle: FileHandleLike): Promise<void> {
    if (this.zeroedEnd === this.writtenEnd) return;
    await handle.truncate(this.writtenEnd);
    this.zeroedEnd = this.writtenEnd;
    await handle.datasync();
  }

  /** The next segment: the one prepared ahead when there is one, else prepared now; then named and made active. */
  private async createSegment(firstOffset: number): Promise<void> {
    // Commits wait for this rotation: one fill more at most, not the rest of the zeros.
    this.rotationWaiting = true;
    let preparedAhead: PreparedSegment | undefined;
    try {
      preparedAhead = await this.preparing;
    } finally {
      this.rotationWaiting = false;
    }
    this.preparing = undefined;
    this.nextWholeReady = false;
    // The first zeros went out with the preparation's fdatasync: no batch of the new segment pays for them.
    const prepared = preparedAhead ?? (await prepareSegment(this.fl, this.dir, this.segmentBytesMax));
    const file = await activatePreparedSegment(this.fl, this.dir, prepared, firstOffset);
    let active: ActiveSegment;
    try {
      active = await openActive(this.fl, file, prepared.handle);
    } catch (error) {
      await discardPreparedSegment(this.fl, { file, handle: prepared.handle });
      throw error;
    }
    this.segments.push({ file, firstOffset, positions: new FramePositions(), end: segmentHeaderBytes });
    this.active = active;
    this.writtenEnd = segmentHeaderBytes;
    this.zeroedEnd = prepared.zeroedEnd;
    this.zeroFillOff = prepared.fillFailed;
    this.activeWhole = prepared.whole;
  }

  /** Read one frame's payload by offset, verifying its CRC; undefined if the log no longer holds it. */
  async readPayload(offset: number): Promise<Buffer | undefined> {
    const segment = this.segmentOf(offset);
    if (!segment) return undefined;
    const position = segment.positions.at(offset - segment.firstOffset);
    // A reader of its own: the active segment's writer handle is write-only.
    let handle;
    try {
      handle = await this.fl.open(segment.file, 'r');
    } catch (error) {
      // Deleted under us by snapshot retention: the log no longer holds this offset.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const header = Buffer.alloc(frameHeaderBytes);
      await handle.read(header, 0, frameHeaderBytes, position);
      const length = header.readUInt32LE(8);
      const buf = Buffer.alloc(frameHeaderBytes + length + frameTrailerBytes);
      await handle.read(buf, 0, buf.length, position);
      const frame = decodeFrame(buf, 0);
      // Assert after the read: a frame acknowledged earlier must still verify.
      if (!frame.ok || frame.offset !== offset) {
        throw new DamagedStore(segment.file, position, frame.ok ? `frame offset ${frame.offset} where ${offset} expected` : frame.reason);
      }
      return frame.payload;
    } finally {
      await handle.close();
    }
  }

  private segmentOf(offset: number): SegmentInfo | undefined {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i]!;
      if (offset >= s.firstOffset) return offset < s.firstOffset + s.positions.length ? s : undefined;
    }
    return undefined;
  }

  /** Delete sealed segments whose every frame is at or below `offset` (covered by a snapshot). */
  async deleteSegmentsThrough(offset: number): Promise<number> {
    let deleted = 0;
    while (this.segments.length > 1) {
      const next = this.segments[1]!;
      if (next.firstOffset - 1 > offset) break;
      const dead = this.segments.shift()!;
      await this.fl.unlink(dead.file);
      deleted++;
    }
    if (deleted > 0) await this.fl.fsyncDir(this.dir);
    return deleted;
  }

  /**
   * The first step of a close: no next segment. One being made stops and goes, and with it up to a
   * segment of zeros, which a nearly full disk may need for the closing checkpoint.
   */
  async dropPrepared(): Promise<void> {
    this.closing = true;
    const prepared = await this.preparing;
    this.preparing = undefined;
    this.nextWholeReady = false;
    if (prepared) await discardPreparedSegment(this.fl, prepared);
  }

  /** Close; with every written frame durable, first cut the zero tail so a closed log holds exactly its frames. */
  async close(): Promise<void> {
    const active = this.active;
    this.active = undefined;
    await this.dropPrepared();
    if (!active) return;
    try {
      if (!this.hasUnsynced) await this.cutZeroTail(active.writer);
    } catch {
      // The zeros stay: the next open reads them as a clean end. Closing must still release the file.
    } finally {
      await closeActive(active);
    }
  }
}

/** The active segment around its writer handle: a second, read-only one for fdatasyncs (ActiveSegment). */
async function openActive(fl: FileLayer, file: string, writer: FileHandleLike): Promise<ActiveSegment> {
  return { writer, syncer: await fl.open(file, 'r'), syncing: [false, false] };
}

async function closeActive(active: ActiveSegment): Promise<void> {
  try {
    await active.syncer.close();
  } finally {
    await active.writer.close();
  }
}
