/**
 * The next segment, made ahead: created under a name that is not a segment's and zero-filled
 * whole, fill by fill, each synced, in the background once the active segment is
 * `nextSegmentPrepareFraction` full. Rotation then only writes the header (over a block the file
 * already owns), syncs it, renames the file to its segment name and syncs the directory: the
 * create, the allocation and the zero fills leave the commit path.
 *
 * Why whole: a zero fill of the active segment (zero-tail.ts) is written on the main thread, and
 * a 1 MiB fill held it ~2 ms (4-7 % of its time at 256 callers): 2.5 ms when a batch's fdatasync
 * ran on the file meanwhile (the fill, which grows the file, waits for it), 0.3 ms when none did.
 * Written on the thread pool instead, into the same file, the frames' writes waited behind it:
 * no gain. Measured (bench/engine-loop.ts, 5 alternated pairs of processes, the loops after the
 * first segment): 64 callers, commit p99 median 3.19 against 3.6 ms and 6 % more commits/s; 256
 * callers, 3-6 % more commits/s. The fills of a segment made ahead do slow the commits'
 * fdatasyncs while they run (p99 ~4.6 against ~1.4 ms, for the ~0.3 s they take at 64 callers);
 * spread out, they slowed more of them as much (docs/BENCHMARKS.md, "Tried ... and not kept").
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
import { zeroFillDue, zeros } from './zero-tail.js';

/** Not a segment name (segment.ts): listSegments and every scan pass it by. */
export const preparedSegmentFileName = 'next-segment.prepared';
/**
 * The next segment is prepared once the active one holds this share of `segmentBytesMax`: half a
 * segment of frames to zero one whole (64 MiB took ~0.3 s here), and until then no second file.
 */
export const nextSegmentPrepareFraction = 0.5;
/** Frames in a segment made in line that make a store busy enough for a segment made ahead, whole (above). */
export const busySegmentBytes = 8 * 1024 * 1024;

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

/** True once frames written up to `writtenEnd` in the active segment (`whole`: made ahead, zeroed whole) call for the next segment to be prepared. */
export function nextSegmentDue(writtenEnd: number, segmentBytesMax: number, whole: boolean): boolean {
  const dueAt = segmentBytesMax * nextSegmentPrepareFraction;
  return writtenEnd >= (whole ? dueAt : Math.min(dueAt, busySegmentBytes));
}

/** How a segment is made ahead: zero-filled whole, unless `stopped` (the log is closing) says to stop between fills. */
export interface AheadOfRotation {
  readonly stopped: () => boolean;
}

/**
 * Creates `dir/${preparedSegmentFileName}` with zeros after the header's place, synced: the first
 * fill, or, made `ahead` of rotation, fills up to `segmentBytesMax` (each synced before the next,
 * so the disk has one fill's pages at a time to write beside the commits' fdatasyncs). A disk too
 * full for the zeros still gets the file, which then appends, as after a failed fill. Rejects
 * (and leaves no file) when the file cannot be made.
 */
export async function prepareSegment(fl: FileLayer, dir: string, segmentBytesMax: number, ahead?: AheadOfRotation): Promise<PreparedSegment> {
  const file = path.join(dir, preparedSegmentFileName);
  const handle = await fl.open(file, 'w');
  try {
    let zeroedEnd = segmentHeaderBytes;
    let fillFailed = false;
    for (let fill = zeroFillDue(zeroedEnd, zeroedEnd, segmentBytesMax); fill; fill = zeroFillDue(zeroedEnd, zeroedEnd, segmentBytesMax)) {
      zeroedEnd = fill.position + fill.bytes; // failed or not: what close and rotation cut back
      try {
        await handle.writev([zeros(fill.bytes)], fill.position);
      } catch {
        fillFailed = true; // the bytes it wrote are zeros: harmless
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
