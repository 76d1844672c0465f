/**
 * The zero tail of the active segment: zeros written (and flushed by a later fdatasync) ahead of
 * the write position, so that the frames of most batches overwrite blocks the file already owns.
 *
 * Why: an fdatasync after an append must journal the new size and the block allocation; after an
 * overwrite of allocated, synced blocks it has no metadata to journal. Measured on this disk
 * (/tmp/h1/ab.mjs, store-like pipeline, 2-10 KB batches, 2 fdatasyncs in flight, A/B blocks):
 * fdatasync p50 0.67 vs 0.96 ms, better in 19 of 20 blocks; one in flight 0.39 vs 0.70 ms.
 * In the store at 64 callers (perf stat): block allocations in writeback 0.91 -> 0.012 per
 * fdatasync; fdatasync syscall p50 0.9-1.4 -> 0.6-0.9 ms (perf trace, 3 A/B pairs, load 5).
 * PostgreSQL zero-fills new WAL segments for the same reason.
 *
 * Rules (recovery.ts keeps them on the read side):
 *  - Only the active (last) segment has a zero tail. A zero run after the last good frame of the
 *    last segment is a clean end: nothing torn, nothing kept aside. Non-zero bytes there are a
 *    torn tail as before. A zero run in a sealed segment is damage.
 *  - Rotation cuts the active segment back to its last frame (durably) before the next segment
 *    is created, and a clean close does the same, so sealed segments, backups and `store inspect`
 *    see exactly the frames.
 *  - A frame header of zeros is never a frame (length 0 is refused, frame.ts), so zeros cannot be
 *    mistaken for data.
 *  - The segment format version is unchanged: a build without this rule reads a zero tail as a
 *    torn tail (length 0) and cuts it after keeping it aside. Safe both ways.
 */

/**
 * Zeros written at once: a fill is one write on the writer's thread and one extension of the file.
 * The fdatasync that carries a 1 MiB fill is slower (p50 ~1.7 ms against ~0.5), under 1 in 100
 * syncs at 64 callers. Smaller fills in line did not lower the commit tail (2026-11-29, 64 callers:
 * 128 KiB fills, 4 alternating bench pairs and 4 scratch pairs); a segment made ahead is zeroed in
 * smaller ones, where they did (prepared-segment.ts, preparedFillBytes). A segment zeroed whole ahead does
 * (2026-12-03: a fill held the main thread ~2 ms in the store at 256 callers), so a busy store's
 * segments are made that way (prepared-segment.ts) and only a segment made in line fills.
 */
export const zeroFillBytes = 1024 * 1024;
/**
 * A fill starts when fewer zeroed bytes than this remain ahead of the written end. Kept well above
 * a batch, so batches land on zeros an earlier fdatasync flushed, never on pages it is still writing.
 * (Measured: a 1 MiB fill costs ~0.35 ms on the writer's thread alone, ~2 ms in a store at 256
 * callers; 4 MiB at once took ~9 ms.)
 */
export const zeroAheadBytesMin = zeroFillBytes / 2;

/** Read-only zeros for fills (never handed to anything that writes into it). */
const zeroChunk = Buffer.alloc(zeroFillBytes);

export interface ZeroFill {
  readonly position: number;
  readonly bytes: number;
}

/**
 * The next fill, if one is due: zeros from the end of those already written (or from the written
 * end, when writes have passed them) up to `fillBytes` further, never past `endMax` (the
 * rotation point: zeros past it would only be cut away when the segment is sealed). `fillBytes` is
 * zeroFillBytes, or less for a segment made ahead (prepared-segment.ts); zeros() refuses more.
 */
export function zeroFillDue(writtenEnd: number, zeroedEnd: number, endMax: number, fillBytes = zeroFillBytes): ZeroFill | undefined {
  const from = Math.max(writtenEnd, zeroedEnd);
  if (from - writtenEnd >= zeroAheadBytesMin) return undefined;
  const to = Math.min(from + fillBytes, endMax);
  return to > from ? { position: from, bytes: to - from } : undefined;
}

/** Zeros for a fill of `bytes` (at most zeroFillBytes). */
export function zeros(bytes: number): Buffer {
  if (!(bytes > 0 && bytes <= zeroFillBytes)) throw new RangeError(`zero fill of ${bytes} bytes outside 1..${zeroFillBytes}`);
  return zeroChunk.subarray(0, bytes);
}

/** Compared against in slices: memcmp speed without a buffer the size of the tail. */
const zeroProbeBytes = 64 * 1024;
const zeroProbe = Buffer.alloc(zeroProbeBytes);

/** True when buf[from, to) holds only zero bytes (and is not empty). */
export function isZeroRun(buf: Buffer, from: number, to: number = buf.length): boolean {
  if (!(from >= 0 && from < to && to <= buf.length)) return false;
  for (let at = from; at < to; at += zeroProbeBytes) {
    const end = Math.min(to, at + zeroProbeBytes);
    if (buf.compare(zeroProbe, 0, end - at, at, end) !== 0) return false;
  }
  return true;
}
