/**
 * The canonical byte stream of a state: tables by name; for each, msgpack [name, rowCount]
 * then each row's fields (schema column order, values normalised at write time) in
 * encoded-primary-key order. The canonical state hash is SHA-256 of this stream, and the
 * binary snapshot file IS this stream, so loading a snapshot verifies the hash for free.
 * A row kept encoded (row-arena.ts) is copied as it is: its bytes are what packing it gives.
 */
import { createHash } from 'node:crypto';
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
 * Chunks of the canonical stream, each at most `chunkBytes` long unless it holds a single
 * row larger than that. Each chunk is a fresh buffer the consumer may keep. Rows are packed
 * into the encoder's buffer and copied straight into the chunk: no buffer per row.
 */
export function* canonicalChunks(tables: readonly TableState[], chunkBytes = 1 << 20): Generator<Buffer> {
  if (!(Number.isSafeInteger(chunkBytes) && chunkBytes > 0)) throw new RangeError(`chunkBytes ${chunkBytes} invalid`);
  const sorted = [...tables].sort((a, b) => (a.schema.name < b.schema.name ? -1 : 1));
  let chunk = Buffer.allocUnsafe(chunkBytes);
  let used = 0;
  const fields: unknown[] = [];
  // Appends the encoded value at bytes[start, end); returns a chunk to yield when the value did
  // not fit beside what is already there.
  const appendBytes = (bytes: Buffer, start: number, end: number): Buffer | undefined => {
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
  };
  const append = (value: unknown): Buffer | undefined => {
    const packed = packInPlace(canonicalPackr, value);
    return appendBytes(packed, packed.start, packed.end);
  };
  for (const t of sorted) {
    let out = append([t.schema.name, t.rows.size]);
    if (out) yield out;
    const last = t.rows.maxKey();
    // The rows are walked with the tree's own traversal (a callback per row, no iterator step),
    // stopping where a chunk fills: the walk resumes after that key once the chunk is yielded.
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
          out = appendBytes(bytes, start, t.arena.rowEnd(bytes, start));
        } else {
          out = append(rowToFields(t.schema, stored, fields));
        }
        if (!out) return undefined;
        stoppedAt = key;
        return stop;
      });
      if (stoppedAt === undefined) break;
      yield out!;
      from = stoppedAt;
      skip = stoppedAt;
    }
  }
  if (used > 0) yield chunk.subarray(0, used);
}

export function canonicalStateHash(tables: readonly TableState[]): string {
  const hash = createHash('sha256');
  for (const chunk of canonicalChunks(tables)) hash.update(chunk);
  return hash.digest('hex');
}

/** canonicalStateHash with a turn of the event loop whenever `slices` say so (an open's check of a big state). Nothing may change the tables meanwhile. */
export async function canonicalStateHashInSlices(tables: readonly TableState[], slices: LoopSlices): Promise<string> {
  const hash = createHash('sha256');
  // A chunk (1 MiB) packs and hashes in a few ms: the slices are checked after each.
  for (const chunk of canonicalChunks(tables)) {
    hash.update(chunk);
    if (slices.due(0)) await slices.turn();
  }
  return hash.digest('hex');
}
