/**
 * The next segment, made ahead: created under a name that is not a segment's, its header bytes
 * and first zero fill written and synced in the background once the active segment is
 * `nextSegmentPrepareFraction` full. Rotation then only writes the header (over a block the file
 * already owns), syncs it, renames the file to its segment name and syncs the directory: the
 * create, the allocation and the zero fill leave the commit path.
 *
 * Recovery rules:
 *  - `preparedSegmentFileName` never parses as a segment name (segment.ts): a leftover one (a
 *    crash before the rename) is not part of the log; the next open removes it.
 *  - The header is durable before the rename: a segment name never points at a file without one.
 *  - After the rename the file is an empty last segment with a zero tail, the state a crash right
 *    after creating a segment always left (zero-tail.ts: a clean end).
 */
import * as path from 'node:path';
import type { FileHandleLike, FileLayer } from '../io/file-layer.js';
import { encodeSegmentHeader, segmentFileName, segmentHeaderBytes } from './segment.js';
import { zeroFillDue, zeros } from './zero-tail.js';

/** Not a segment name (segment.ts): listSegments and every scan pass it by. */
export const preparedSegmentFileName = 'next-segment.prepared';
/** The next segment is prepared once the active one holds this share of `segmentBytesMax`. */
export const nextSegmentPrepareFraction = 0.75;

export interface PreparedSegment {
  readonly file: string;
  readonly handle: FileHandleLike;
  /** Byte after the zeros written (what close and rotation cut back). */
  readonly zeroedEnd: number;
  /** The first fill failed (disk full): the segment appends, as after a failed fill. */
  readonly fillFailed: boolean;
}

/** True once frames written up to `writtenEnd` call for the next segment to be prepared. */
export function nextSegmentDue(writtenEnd: number, segmentBytesMax: number): boolean {
  return writtenEnd >= segmentBytesMax * nextSegmentPrepareFraction;
}

/**
 * Creates `dir/${preparedSegmentFileName}` with the first zero fill after the header's place (a
 * disk too full for it still gets the file, which then appends, as after a failed fill), synced.
 * Rejects (and leaves no file) when the file cannot be made.
 */
export async function prepareSegment(fl: FileLayer, dir: string, segmentBytesMax: number): Promise<PreparedSegment> {
  const file = path.join(dir, preparedSegmentFileName);
  const handle = await fl.open(file, 'w');
  try {
    let zeroedEnd = segmentHeaderBytes;
    let fillFailed = false;
    const fill = zeroFillDue(segmentHeaderBytes, segmentHeaderBytes, segmentBytesMax);
    if (fill) {
      zeroedEnd = fill.position + fill.bytes; // failed or not: what close and rotation cut back
      try {
        await handle.writev([zeros(fill.bytes)], fill.position);
      } catch {
        fillFailed = true; // the bytes it wrote are zeros: harmless
      }
    }
    await handle.datasync();
    return { file, handle, zeroedEnd, fillFailed };
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
