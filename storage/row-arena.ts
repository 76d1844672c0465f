/**
 * Rows kept as their encoded bytes instead of objects. A row loaded from a snapshot or replayed
 * from the log is stored in its table's tree as a small integer: a reference to its msgpack
 * field array (row-codec.ts) in the table's arena. It is decoded into a fresh row object each
 * time someone reads it; a row a transaction puts is stored as the object it is.
 *
 * Why: an open used to build about seven JS objects per row (row, JSON values, strings, the
 * decoder's arrays) that all survived into the old generation; the young-generation copies and
 * the page faults of the growing heap were most of the open's time. A reference is no object at
 * all, and the bytes it points at are exactly the row's canonical encoding (the same encoder
 * wrote them), so the state hash and snapshots copy them instead of encoding the row again.
 *
 * A reference is chunk * arenaChunkBytes + position. Chunks are either buffers the arena
 * allocated and fills with copied rows (replay), or windows on a buffer it adopted whole (a
 * snapshot file: window k starts k chunks in and runs to the buffer's end, so a row that
 * crosses a window's start is still read whole from the window it starts in). Arenas only
 * grow: bytes are never overwritten, so a tree cloned for a snapshot may keep reading them.
 */
import { msgpackValueEnd } from './msgpack-extent.js';
import { fieldsToRow, rowUnpackr } from './row-codec.js';
import type { Row, TableSchema } from './schema.js';

/** What a table's tree holds per key: the row itself, or a reference into the table's arena. */
export type StoredRow = Row | number;

/** Address window of one chunk; also the largest chunk the arena allocates. */
export const arenaChunkBytes = 1 << 24;
/** References stay below 2^30: small integers on every V8 build, so a leaf holds them unboxed. */
export const arenaChunksMax = 64;
/** First chunk the arena allocates for copied rows; each next one doubles up to arenaChunkBytes. */
const firstChunkBytes = 4 * 1024;

export class RowArena {
  /** Chunk views, by chunk number (the high bits of a reference). */
  private readonly chunks: Buffer[] = [];
  /** The chunk copied rows go into, and how much of it is used. */
  private fill: Buffer | undefined;
  private fillChunk = -1;
  private fillUsed = 0;

  /** Bytes of the chunks this arena allocated (adopted buffers not counted). */
  allocatedBytes = 0;

  /**
   * Copy the encoded row at buf[start, end) in; its reference, or undefined when the arena is
   * full (the caller then stores the decoded row instead).
   */
  copyIn(buf: Uint8Array, start: number, end: number): number | undefined {
    const length = end - start;
    if (!(length > 0 && length <= arenaChunkBytes)) return undefined;
    if (this.fill === undefined || this.fillUsed + length > this.fill.length) {
      if (this.chunks.length >= arenaChunksMax) return undefined;
      const previous = this.fill?.length ?? firstChunkBytes / 2;
      const bytes = Math.max(length, Math.min(arenaChunkBytes, previous * 2));
      this.fill = Buffer.allocUnsafeSlow(bytes);
      this.allocatedBytes += bytes;
      this.fillChunk = this.chunks.length;
      this.fillUsed = 0;
      this.chunks.push(this.fill);
    }
    const at = this.fillUsed;
    copyBytes(this.fill, at, buf, start, end);
    this.fillUsed = at + length;
    // Later copies go to a new chunk: an adopted buffer may take the next chunk numbers.
    return this.fillChunk * arenaChunkBytes + at;
  }

  /**
   * Adopt `buf` whole (its bytes must never change): a function from a position in it to a
   * reference, or undefined when the arena has no room for it.
   */
  adopt(buf: Buffer): ((position: number) => number) | undefined {
    const windows = Math.max(1, Math.ceil(buf.length / arenaChunkBytes));
    if (this.chunks.length + windows > arenaChunksMax) return undefined;
    const first = this.chunks.length;
    for (let k = 0; k < windows; k++) this.chunks.push(buf.subarray(k * arenaChunkBytes));
    // Copied rows must not land in a chunk number taken by a window: start a new fill chunk.
    this.fill = undefined;
    const base = first * arenaChunkBytes;
    return (position) => base + position;
  }

  /** The chunk a reference points into (the row starts at rowStart(ref) in it). */
  chunkOf(ref: number): Buffer {
    const chunk = this.chunks[Math.floor(ref / arenaChunkBytes)];
    if (chunk === undefined || !(ref >= 0)) throw new Error(`row reference ${ref} points outside its arena`);
    return chunk;
  }

  /** End (exclusive) in `chunk` of the encoded row starting at `start`. */
  rowEnd(chunk: Buffer, start: number): number {
    const end = msgpackValueEnd(chunk, start, chunk.length);
    if (end === undefined) throw new Error(`row at ${start} of an arena chunk is not one msgpack value`);
    return end;
  }

  /** A fresh row object decoded from the bytes a reference points at. */
  decode(schema: TableSchema, ref: number): Row {
    const chunk = this.chunkOf(ref);
    const start = rowStart(ref);
    return fieldsToRow(schema, rowUnpackr.unpack(chunk, { start, end: this.rowEnd(chunk, start) }));
  }
}

/** Where in its chunk the row a reference points at starts. */
export function rowStart(ref: number): number {
  return ref % arenaChunkBytes;
}

/** Copy source[start, end) to target at `at`. Rows are small: a loop beats the native copy's call overhead below a few hundred bytes. */
export function copyBytes(target: Uint8Array, at: number, source: Uint8Array, start: number, end: number): void {
  if (end - start < 256) {
    for (let i = start; i < end; i++) target[at++] = source[i]!;
  } else {
    target.set(source.subarray(start, end), at);
  }
}

/** The row a stored value stands for (decoded when it is a reference). */
export function storedRowValue(stored: StoredRow, schema: TableSchema, arena: RowArena): Row {
  return typeof stored === 'number' ? arena.decode(schema, stored) : stored;
}
