/**
 * The canonical byte stream of a state: tables by name; for each, msgpack [name, rowCount]
 * then each row's fields (schema column order, values normalised at write time) in
 * encoded-primary-key order. The canonical state hash is SHA-256 of this stream, and the
 * binary snapshot file IS this stream, so loading a snapshot verifies the hash for free.
 * A row kept encoded (row-arena.ts) is copied as it is: its bytes are what packing it gives.
 */
import { createHash, type Hash } from 'node:crypto';
import { forRangeStoppable, stop, type BTree } from './btree.js';
import type { LoopSlices } from './io/event-loop.js';
import { copyBytes, rowStart, type RowArena, type StoredRow } from './row-arena.js';
import { newRowPackr, packInPlace, rowToFields } from './row-codec.js';
import type { TableSchema } from './schema.js';

export interface TableState {
  readonly schema: TableSchema;
  readonly rows: BTree<string, StoredRow>;
  /** Where the rows kept encoded live; needed when any value of `rows` is a reference. */
  readonly arena?: RowArena;
}

/** Our own encoder: each value is copied out of its buffer before the next is packed. */
const canonicalPackr = newRowPackr();

/**
 * Takes the canonical stream piece by piece, in order: bytes[start, end). `kept`: the bytes stay
 * as they are for the whole walk (a row in an arena); otherwise they are the encoder's, rewritten
 * by the next piece. Returns something for the walk to yield before it goes on, or undefined.
 */
type PieceSink<T> = (bytes: Buffer, start: number, end: number, kept: boolean) => T | undefined;

/** The canonical stream as pieces handed to `take`, yielding what it returns. */
function* canonicalPieces<T>(tables: readonly TableState[], take: PieceSink<T>): Generator<T> {
  const sorted = [...tables].sort((a, b) => (a.schema.name < b.schema.name ? -1 : 1));
  const fields: unknown[] = [];
  const takePacked = (value: unknown): T | undefined => {
    const packed = packInPlace(canonicalPackr, value);
    return take(packed, packed.start, packed.end, false);
  };
  for (const t of sorted) {
    let out = takePacked([t.schema.name, t.rows.size]);
    if (out !== undefined) yield out;
    const last = t.rows.maxKey();
    // The rows are walked with the tree's own traversal (a callback per row, no iterator step),
    // stopping where `take` has something to yield: the walk resumes after that key once it is yielded.
    let from = t.rows.minKey();
    let skip: string | undefined;
    while (from !== undefined && last !== undefined) {
      let stoppedAt: string | undefined;
      forRangeStoppable(t.rows, from, last, (key, stored) => {
        if (key === skip) return undefined;
        if (typeof stored === 'number') {
          if (!t.arena) throw new Error(`canonical stream: ${t.schema.name} holds encoded rows but no arena`);
          const bytes = t.arena.chunkOf(stored);
          const start = rowStart(stored);
          out = take(bytes, start, t.arena.rowEnd(bytes, stored), true);
        } else {
          out = takePacked(rowToFields(t.schema, stored, fields));
        }
        if (out === undefined) return undefined;
        stoppedAt = key;
        return stop;
      });
      if (stoppedAt === undefined) break;
      yield out!;
      from = stoppedAt;
      skip = stoppedAt;
    }
  }
}

/**
 * Chunks of the canonical stream, each at most `chunkBytes` long unless it holds a single
 * row larger than that. Each chunk is a fresh buffer the consumer may keep. Rows are packed
 * into the encoder's buffer and copied straight into the chunk: no buffer per row.
 */
export function* canonicalChunks(tables: readonly TableState[], chunkBytes = 1 << 20): Generator<Buffer> {
  if (!(Number.isSafeInteger(chunkBytes) && chunkBytes > 0)) throw new RangeError(`chunkBytes ${chunkBytes} invalid`);
  let chunk = Buffer.allocUnsafe(chunkBytes);
  let used = 0;
  // Appends the encoded value at bytes[start, end); returns a chunk to yield when the value did
  // not fit beside what is already there.
  yield* canonicalPieces(tables, (bytes, start, end): Buffer | undefined => {
    const length = end - start;
    if (length <= chunkBytes - used) {
      copyBytes(chunk, used, bytes, start, end);
      used += length;
      return undefined;
    }
    const full = chunk.subarray(0, used);
    if (length > chunkBytes) {
      // Larger than a chunk: yield what is pending, then this value alone (no copy into a chunk).
      chunk = Buffer.allocUnsafe(chunkBytes);
      used = 0;
      const alone = Buffer.from(bytes.subarray(start, end));
      return full.length > 0 ? Buffer.concat([full, alone]) : alone;
    }
    chunk = Buffer.allocUnsafe(chunkBytes);
    copyBytes(chunk, 0, bytes, start, end);
    used = length;
    return full.length > 0 ? full : undefined;
  });
  if (used > 0) yield chunk.subarray(0, used);
}

/** Bytes of canonical stream hashed between two checks of the slices (a few ms of work). */
export const hashSliceBytes = 1 << 20;
/**
 * Rows that lie back to back in an arena for at least this many bytes go to the hash as one
 * range, uncopied; shorter runs are copied into a staging buffer first, since a native update
 * per row (a call and a view) costs more than copying a row of a few hundred bytes.
 */
export const hashRunBytesMin = 1024;

/**
 * Feeds the canonical stream to `hash`, yielding after each hashSliceBytes. The hash walks the
 * same pieces as canonicalChunks, but needs no fresh buffer: runs of rows in arena order (a
 * snapshot's rows, rows replayed in key order) are hashed where they lie.
 */
function* hashCanonical(tables: readonly TableState[], hash: Hash): Generator<true> {
  const staging = Buffer.allocUnsafe(hashSliceBytes);
  let staged = 0;
  let run: Buffer | undefined;
  let runStart = 0;
  let runEnd = 0;
  let sinceYield = 0;
  const stage = (bytes: Buffer, start: number, end: number): void => {
    if (end - start > staging.length - staged) {
      hash.update(staging.subarray(0, staged));
      staged = 0;
    }
    if (end - start > staging.length) {
      hash.update(bytes.subarray(start, end));
      return;
    }
    copyBytes(staging, staged, bytes, start, end);
    staged += end - start;
  };
  // The pending run goes to the hash after what is staged (stream order).
  const endRun = (): void => {
    if (run === undefined) return;
    if (runEnd - runStart < hashRunBytesMin) {
      stage(run, runStart, runEnd);
    } else {
      if (staged > 0) hash.update(staging.subarray(0, staged));
      staged = 0;
      hash.update(run.subarray(runStart, runEnd));
    }
    run = undefined;
  };
  yield* canonicalPieces(tables, (bytes, start, end, kept): true | undefined => {
    if (kept && bytes === run && start === runEnd) {
      runEnd = end;
    } else {
      endRun();
      if (kept) {
        run = bytes;
        runStart = start;
        runEnd = end;
      } else {
        stage(bytes, start, end);
      }
    }
    sinceYield += end - start;
    if (sinceYield < hashSliceBytes) return undefined;
    sinceYield = 0;
    endRun(); // nothing of the tables is held across the pause
    return true;
  });
  endRun();
  if (staged > 0) hash.update(staging.subarray(0, staged));
}

export function canonicalStateHash(tables: readonly TableState[]): string {
  const hash = createHash('sha256');
  for (const _ of hashCanonical(tables, hash));
  return hash.digest('hex');
}

/** canonicalStateHash with a turn of the event loop whenever `slices` say so (an open's check of a big state). Nothing may change the tables meanwhile. */
export async function canonicalStateHashInSlices(tables: readonly TableState[], slices: LoopSlices): Promise<string> {
  const hash = createHash('sha256');
  // hashSliceBytes pack and hash in a few ms: the slices are checked after each.
  for (const _ of hashCanonical(tables, hash)) {
    if (slices.due(0)) await slices.turn();
  }
  return hash.digest('hex');
}
