/**
 * The next segment, made ahead: created under a name that is not a segment's and zero-filled
 * whole, fill by fill (`preparedFillBytes`), each synced, in the background once the active
 * segment holds `busySegmentBytes` of frames (half of a smaller segment). Rotation then only
 * writes the header (over a block the file already owns), syncs it, renames the file to its
 * segment name and syncs the directory: the create, the allocation and the zero fills leave the
 * commit path. Rotation never waits for the zeros: a segment not yet zeroed whole when the active
 * one is full stops after its current fill and is taken as it is (its batches fill the rest, as a
 * segment made in line does).
 *
 * Why whole: a zero fill of the active segment (zero-tail.ts) is written on the main thread, and
 * a 1 MiB fill held it ~2 ms (4-7 % of its time at 256 callers): 2.5 ms when a batch's fdatasync
 * ran on the file meanwhile (the fill, which grows the file, waits for it), 0.3 ms when none did.
 * Written on the thread pool instead, into the same file, the frames' writes waited behind it:
 * no gain. Measured (bench/engine-loop.ts, 5 alternated pairs of processes, the loops after the
 * first segment): 64 callers, commit p99 median 3.19 against 3.6 ms and 6 % more commits/s; 256
 * callers, 3-6 % more commits/s.
 *
 * Why small fills: the fills slow the commits' fdatasyncs while they run. A commit's fdatasync
 * issued while a fill's write occupies the device waits for it: 1 MiB fills put the batches beside
 * them at a fdatasync p99 of ~4.6 against ~1.4 ms (the 64-caller commit p99 was theirs), and
 * spread out in time they slowed more batches as much (docs/BENCHMARKS.md, "Tried ... and not
 * kept"). At `preparedFillBytes` each waits for less; the segment takes ~3x longer to zero (~1 s
 * at 256 callers), hence the earlier start.
 *
 * A segment made in line (a store's first after its open, or when none was ready) gets its first
 * fill only, and its commits fill the rest as they go. Once such a segment holds
 * `busySegmentBytes` of frames, the store is a busy one: the next segment is made ahead, whole,
 * and taken as soon as it is ready (the commitlog's `wantsRotation`), not when this one is full.
 * A store that writes less never makes a segment ahead, so it never holds a segment of zeros.
 *
 * Recovery rules:
 *  - `preparedSegmentFileName` never parses as a segment name (segment.ts): a leftover one (a
 *    crash before the rename) is not part of the log; the next open removes it.
 *  - The header is durable before the rename: a segment name never points at a file without one.
 *  - After the rename the file is an empty last segment with a zero tail, the state a crash right
 *    after creating a segment always left (zero-tail.ts: a clean end). A last segment whose zeros
 *    reach segmentBytesMax after a crash is taken as made ahead again (whole), so the reopened
 *    store fills it instead of leaving it early for another one.
 */
import * as path from 'node:path';
import type { FileHandleLike, FileLayer } from '../io/file-layer.js';
import { encodeSegmentHeader, segmentFileName, segmentHeaderBytes } from './segment.js';
import { zeroFillBytes, zeroFillDue, zeros } from './zero-tail.js';

/** Not a segment name (segment.ts): listSegments and every scan pass it by. */
export const preparedSegmentFileName = 'next-segment.prepared';
/**
 * The next segment is prepared once the active one holds this share of `segmentBytesMax`, or
 * `busySegmentBytes` of frames if that comes first (a segment smaller than twice that: a test's).
 */
export const nextSegmentPrepareFraction = 0.5;
/**
 * Frames in the active segment that make a store busy enough for a segment made ahead, whole
 * (above), and start it: 56 MiB of a 64 MiB segment's frames are left to write meanwhile, ~1.4 s
 * at 256 callers here, against ~1 s to zero 64 MiB in `preparedFillBytes` fills beside them.
 */
export const busySegmentBytes = 8 * 1024 * 1024;
/**
 * The zeros of one fill of a segment made ahead, each synced before the next. Against 1 MiB fills
 * (2026-12-03, bench/engine-loop.ts at 64 callers, 4 alternated sets of processes, the loops after
 * the first): commit p99 median 1.7 against 3.4 ms, batch fdatasync p99 1.3 against 3.4 ms; 64 KiB
 * fills were no better than 128 (p99 1.7 ms) and zeroed a segment slower (1.2-2.2 s at 256 callers).
 */
export const preparedFillBytes = 128 * 1024;

export interface PreparedSegment {
  readonly file: string;
  readonly handle: FileHandleLike;
  /** Byte after the zeros written (what close and rotation cut back). */
  readonly zeroedEnd: number;
  /** A fill failed (disk full): the segment appends, as after a failed fill. */
  readonly fillFailed: boolean;
  /** Zeroed to `segmentBytesMax`: its batches will write no zeros. */
  readonly whole: boolean;
}

/** True once frames written up to `writtenEnd` in the active segment call for the next segment to be prepared. */
export function nextSegmentDue(writtenEnd: number, segmentBytesMax: number): boolean {
  return writtenEnd >= Math.min(segmentBytesMax * nextSegmentPrepareFraction, busySegmentBytes);
}

/**
 * How a segment is made ahead: zero-filled whole, unless `stopped` says to stop between fills (the
 * log is closing, or rotation wants the segment now: it is then taken as zeroed so far).
 */
export interface AheadOfRotation {
  readonly stopped: () => boolean;
}

/**
 * Creates `dir/${preparedSegmentFileName}` with zeros after the header's place, synced: the first
 * fill, or, made `ahead` of rotation, fills of `preparedFillBytes` up to `segmentBytesMax` (each
 * synced before the next, so the disk has one small fill's pages at a time to write beside the
 * commits' fdatasyncs). A disk too full for the zeros still gets the file, which then appends, as
 * after a failed fill (made ahead, with none of its zeros). Rejects (and leaves no file) when the
 * file cannot be made.
 */
export async function prepareSegment(fl: FileLayer, dir: string, segmentBytesMax: number, ahead?: AheadOfRotation): Promise<PreparedSegment> {
  const file = path.join(dir, preparedSegmentFileName);
  const handle = await fl.open(file, 'w');
  try {
    let zeroedEnd = segmentHeaderBytes;
    let fillFailed = false;
    const fillBytes = ahead ? preparedFillBytes : zeroFillBytes;
    for (let fill = zeroFillDue(zeroedEnd, zeroedEnd, segmentBytesMax, fillBytes); fill; fill = zeroFillDue(zeroedEnd, zeroedEnd, segmentBytesMax, fillBytes)) {
      zeroedEnd = fill.position + fill.bytes; // failed or not: what close and rotation cut back
      try {
        await handle.writev([zeros(fill.bytes)], fill.position);
      } catch {
        fillFailed = true; // the bytes it wrote are zeros: harmless
        // The disk filled: the zeros made ahead (up to a segment of them) are room the active
        // segment's commits need now. Given back, this one appends as after a failed fill (a cut
        // that fails too leaves the zeros where they are, still good ones).
        if (ahead && (await handle.truncate(segmentHeaderBytes).then(() => true, () => false))) zeroedEnd = segmentHeaderBytes;
        break;
      }
      if (!ahead || ahead.stopped() || zeroedEnd >= segmentBytesMax) break;
      await handle.datasync();
    }
    await handle.datasync();
    return { file, handle, zeroedEnd, fillFailed, whole: !fillFailed && zeroedEnd >= segmentBytesMax };
  } catch (error) {
    await discardPreparedSegment(fl, { file, handle });
    throw error;
  }
}

/**
 * Makes a prepared file the segment starting at `firstOffset`: its header, synced, then the
 * segment name, synced in the directory. Returns the segment's file. On failure the file is gone
 * under both names.
 */
export async function activatePreparedSegment(fl: FileLayer, dir: string, prepared: PreparedSegment, firstOffset: number): Promise<string> {
  const file = path.join(dir, segmentFileName(firstOffset));
  try {
    await prepared.handle.writev([encodeSegmentHeader(firstOffset)], 0);
    // The header before the name: a segment name never points at a file without its header.
    await prepared.handle.datasync();
    await fl.rename(prepared.file, file);
    // A new name is not durable until its directory is fsync'ed.
    await fl.fsyncDir(dir);
  } catch (error) {
    await discardPreparedSegment(fl, prepared);
    await fl.unlink(file).catch(() => undefined);
    throw error;
  }
  return file;
}

/** Closes and removes a prepared file not used (best effort: a leftover is removed at the next open). */
export async function discardPreparedSegment(fl: FileLayer, prepared: Pick<PreparedSegment, 'file' | 'handle'>): Promise<void> {
  await prepared.handle.close().catch(() => undefined);
  await fl.unlink(prepared.file).catch(() => undefined);
}

/** Removes the prepared file a crash left in `dir`, if any: it was never part of the log. */
export async function removeLeftoverPreparedSegment(fl: FileLayer, dir: string): Promise<void> {
  const file = path.join(dir, preparedSegmentFileName);
  if (await fl.exists(file)) await fl.unlink(file);
}
