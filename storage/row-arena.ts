/**
 * Rows kept as their encoded bytes instead of objects. Every row a table holds is stored in its
 * tree as a small integer: a reference to its msgpack field array (row-codec.ts) in the table's
 * arena. Rows loaded from a snapshot point into the adopted file buffer, replayed rows into
 * copies of their log bytes, and a row a transaction puts is encoded into the arena as it is
 * put. It is decoded into a fresh row object each time someone reads it.
 *
 * Why: a row object is about seven JS objects (row, JSON values, strings). Every row written
 * survived two young-generation collections and was copied twice before it settled in the old
 * generation, and every replaced row became old-generation garbage: under a steady write load
 * the scavenges that copied them were the commit latency tail (6-7 ms pauses every ~45 ms).
 * A reference is no object at all, and the bytes it points at are exactly the row's canonical
 * encoding (the same encoder wrote them), so the state hash and snapshots copy them instead of
 * encoding the row again.
 *
 * A reference is chunk * arenaChunkBytes + position. Chunks are either buffers the arena
 * allocated and fills with copied rows, or windows on a buffer it adopted whole (a snapshot
 * file: window k starts k chunks in and runs to the buffer's end, so a row that crosses a
 * window's start is still read whole from the window it starts in). Bytes are never
 * overwritten, so a tree cloned for a snapshot may keep reading them while it is pinned.
 *
 * A replaced or deleted row leaves dead bytes behind. Once they outweigh the live ones (and
 * arenaCompactionDeadBytesMin), the table compacts its arena in small steps between other work
 * (Table.compactStep): the chunks that exist when it begins are marked old, every row in them
 * is copied to a new chunk and its reference moved, and the old chunks are released once the
 * whole tree has been walked and no clone pins them. Their numbers are then reused.
 */
import { msgpackValueEnd } from './msgpack-extent.js';
import { fieldsToRow, rowUnpackr } from './row-codec.js';
import type { Row, TableSchema } from './schema.js';

/** What a table's tree holds per key: a reference into the table's arena, or (arena full) the row itself. */
export type StoredRow = Row | number;

/** Address window of one chunk; also the largest chunk the arena allocates. */
export const arenaChunkBytes = 1 << 24;
/** References stay below 2^30: small integers on every V8 build, so a leaf holds them unboxed. */
export const arenaChunksMax = 64;
/** First chunk the arena allocates for copied rows; each next one doubles up to arenaChunkBytes. */
const firstChunkBytes = 4 * 1024;
/** A chunk's first row-start list has an entry per this many of its bytes; it doubles when rows are smaller. */
const rowStartsBytesPerEntry = 256;
/** A compaction is due once dead bytes reach the live ones and at least this many (small tables compact rarely). */
export const arenaCompactionDeadBytesMin = 4 * 1024 * 1024;

/** Bytes of encoded rows an arena holds, or several arenas summed (sumRowBytes). */
export interface RowBytes {
  /** Rows the table holds now. */
  readonly live: number;
  /** Rows since replaced or deleted, held until a compaction releases them. */
  readonly dead: number;
  /** Chunks a compaction released, kept for the next rows. */
  readonly spare: number;
}

export function sumRowBytes(parts: Iterable<RowBytes>): RowBytes {
  let live = 0;
  let dead = 0;
  let spare = 0;
  for (const part of parts) {
    live += part.live;
    dead += part.dead;
    spare += part.spare;
  }
  return { live, dead, spare };
}

export class RowArena {
  /** Chunk views, by chunk number (the high bits of a reference); undefined once released. */
  private readonly chunks: (Buffer | undefined)[] = [];
  /** The chunk copied rows go into, and how much of it is used. */
  private fill: Buffer | undefined;
  private fillChunk = -1;
  private fillUsed = 0;
  /** Size of the last chunk allocated: the next one doubles it (restarted by a compaction). */
  private lastChunkBytes = firstChunkBytes / 2;
  /** Row bytes stored in each chunk, and how many of them belong to rows since replaced or deleted. */
  // Plain arrays that grow with the chunks: a tenant has a few dozen tables, most of them small.
  private readonly usedBytes: number[] = [];
  private readonly deadBytes: number[] = [];
  private usedTotal = 0;
  private deadTotal = 0;
  /**
   * Where each row copied into a chunk starts, by chunk number (undefined for a window on an
   * adopted buffer), and how many there are. Rows are copied back to back, so a row ends where
   * the next one starts and the last one at the chunk's used bytes: rowEnd answers without
   * walking the msgpack (that walk was a fifth of the state hash check after an open). Costs
   * 4 bytes per row copied, live or dead, and up to as much again of room to grow.
   */
  private readonly rowStarts: (Uint32Array | undefined)[] = [];
  private readonly rowCounts: number[] = [];
  /** Chunk number and index in its rowStarts of the row rowEnd last looked up there: the canonical walk asks for rows that follow each other. */
  private lastStartsChunk = -1;
  private lastStartsIndex = 0;
  /** Released chunk numbers, reused lowest first. */
  private readonly freeChunks: number[] = [];
  /** Buffers of released chunks this arena allocated, largest last: a new chunk reuses one (see keepSpares). */
  private readonly spares: Buffer[] = [];
  /** Chunks this arena allocated itself (not windows on an adopted buffer): only those become spares. */
  private readonly ownChunks = new Set<Buffer>();
  /** While a compaction runs: 1 for each chunk whose rows it moves out. */
  private oldChunks: Uint8Array | undefined;
  /** The compaction has walked every row; the old chunks go once nothing pins them. */
  private releaseWaiting = false;
  /** Clones of a tree reading this arena (snapshots being written): old chunks stay while any is pinned. */
  private pins = 0;
  /** Compactions that walked the whole tree so far. */
  compactionsEnded = 0;
  /** Dead bytes when a compaction last gave up (no chunk left): the next waits until they double. */
  private deadAtAbort = 0;
  /**
   * The ends of the last two rows rowEnd found or copyIn wrote, by chunk buffer and start (0 the
   * newer). An upsert asks for its old row's end three times (decode, dead count, frame copy) and
   * for its new row's once: each ask was a walk of the msgpack, ~4 % of the main thread at 64
   * callers. Bytes never change while their chunk is held; a released chunk's buffer may come
   * back as a spare with other rows at the same positions, so releaseOld forgets them.
   */
  private endChunk0: Buffer | undefined;
  private endStart0 = 0;
  private endEnd0 = 0;
  private endChunk1: Buffer | undefined;
  private endStart1 = 0;
  private endEnd1 = 0;

  /** Row bytes held, live and dead (what the arena costs in memory, about). */
  get bytesHeld(): number {
    return this.usedTotal;
  }

  /** Row bytes of rows replaced or deleted, not yet released by a compaction. */
  get bytesDead(): number {
    return this.deadTotal;
  }

  /**
   * Copy the encoded row at buf[start, end) in; its reference, or undefined when the arena is
   * full (the caller then stores the decoded row instead).
   */
  copyIn(buf: Uint8Array, start: number, end: number): number | undefined {
    const length = end - start;
    if (!(length > 0 && length <= arenaChunkBytes)) return undefined;
    if (this.fill === undefined || this.fillUsed + length > this.fill.length) {
      const chunk = this.freeChunks.length > 0 ? this.freeChunks.shift()! : this.chunks.length;
      if (chunk >= arenaChunksMax) return undefined;
      const bytes = Math.max(length, Math.min(arenaChunkBytes, this.lastChunkBytes * 2));
      const spare = this.spares.length > 0 && this.spares[this.spares.length - 1]!.length >= length ? this.spares.pop() : undefined;
      this.fill = spare ?? Buffer.allocUnsafeSlow(bytes);
      this.ownChunks.add(this.fill);
      this.lastChunkBytes = this.fill.length;
      this.fillChunk = chunk;
      this.fillUsed = 0;
      this.chunks[chunk] = this.fill;
      this.rowStarts[chunk] = new Uint32Array(Math.max(16, Math.ceil(this.fill.length / rowStartsBytesPerEntry)));
      this.rowCounts[chunk] = 0;
    }
    const at = this.fillUsed;
    copyBytes(this.fill, at, buf, start, end);
    this.fillUsed = at + length;
    this.noteRowStart(this.fillChunk, at);
    this.rememberEnd(this.fill, at, at + length);
    this.usedBytes[this.fillChunk] = (this.usedBytes[this.fillChunk] ?? 0) + length;
    this.usedTotal += length;
    return this.fillChunk * arenaChunkBytes + at;
  }

  private noteRowStart(chunk: number, at: number): void {
    let starts = this.rowStarts[chunk]!;
    const count = this.rowCounts[chunk]!;
    if (count === starts.length) {
      const grown = new Uint32Array(2 * count);
      grown.set(starts);
      this.rowStarts[chunk] = starts = grown;
    }
    starts[count] = at;
    this.rowCounts[chunk] = count + 1;
  }

  /** The row a reference points at was replaced or deleted: its bytes count as dead. */
  noteDead(ref: number): void {
    this.countDead(ref, this.rowEnd(this.chunkOf(ref), ref) - rowStart(ref));
  }

  private countDead(ref: number, length: number): void {
    const number = Math.floor(ref / arenaChunkBytes);
    this.deadBytes[number] = (this.deadBytes[number] ?? 0) + length;
    this.deadTotal += length;
  }

  /** True when a compaction should begin: dead bytes at least the live ones and the minimum, none running. */
  get compactionDue(): boolean {
    return this.oldChunks === undefined && this.deadTotal >= arenaCompactionDeadBytesMin && this.deadTotal >= this.usedTotal - this.deadTotal
      && this.deadTotal >= 2 * this.deadAtAbort;
  }

  get compacting(): boolean {
    return this.oldChunks !== undefined;
  }

  /**
   * Mark every chunk there is as old; rows copied from now on go to new chunks, the first about
   * the size of the live rows (few chunk numbers: old and new chunks share arenaChunksMax).
   */
  beginCompaction(): void {
    if (this.oldChunks) throw new Error('arena: a compaction is already running');
    this.oldChunks = new Uint8Array(arenaChunksMax);
    for (let i = 0; i < this.chunks.length; i++) if (this.chunks[i]) this.oldChunks[i] = 1;
    this.fill = undefined;
    const live = this.usedTotal - this.deadTotal;
    let first = firstChunkBytes;
    while (first < live && first < arenaChunkBytes) first *= 2;
    this.lastChunkBytes = first / 2;
  }

  /** True when the reference points into a chunk the running compaction moves rows out of. */
  isOld(ref: number): boolean {
    return this.oldChunks !== undefined && this.oldChunks[Math.floor(ref / arenaChunkBytes)] === 1;
  }

  /** Copy the row a reference points at to a new chunk: its new reference, or undefined when the arena is full. */
  move(ref: number): number | undefined {
    const chunk = this.chunkOf(ref);
    const start = rowStart(ref);
    const end = this.rowEnd(chunk, ref);
    const moved = this.copyIn(chunk, start, end);
    // The tree points at the copy from now on: the old bytes are dead, so held minus dead stays
    // the live rows' bytes while a compaction runs (and after one gives up).
    if (moved !== undefined) this.countDead(ref, end - start);
    return moved;
  }

  /** Every row of the tree has been moved out of the old chunks: release them (now, or when the last pin goes). */
  endCompaction(): void {
    if (!this.oldChunks) throw new Error('arena: no compaction to end');
    this.compactionsEnded++;
    if (this.pins > 0) this.releaseWaiting = true;
    else this.releaseOld();
  }

  /** Give up a compaction (no chunk left): every chunk stays; moved rows' old copies count as dead (move). */
  abortCompaction(): void {
    this.oldChunks = undefined;
    this.deadAtAbort = this.deadTotal;
  }

  /** A clone of a tree that reads this arena is in use: old chunks stay until the returned function is called. */
  pin(): () => void {
    this.pins++;
    let pinned = true;
    return () => {
      if (!pinned) return;
      pinned = false;
      this.pins--;
      if (this.pins === 0 && this.releaseWaiting) this.releaseOld();
    };
  }

  private releaseOld(): void {
    const old = this.oldChunks!;
    for (let i = 0; i < old.length; i++) {
      if (old[i] !== 1) continue;
      const released = this.chunks[i]!;
      if (this.ownChunks.delete(released)) this.spares.push(released);
      this.chunks[i] = undefined;
      this.usedTotal -= this.usedBytes[i] ?? 0;
      this.deadTotal -= this.deadBytes[i] ?? 0;
      this.usedBytes[i] = 0;
      this.deadBytes[i] = 0;
      this.rowStarts[i] = undefined;
      this.rowCounts[i] = 0;
      this.freeChunks.push(i);
    }
    this.freeChunks.sort((a, b) => a - b);
    // Released trailing numbers are simply past the end again (adopt appends there).
    while (this.chunks.length > 0 && this.chunks[this.chunks.length - 1] === undefined) {
      this.chunks.length--;
      const at = this.freeChunks.indexOf(this.chunks.length);
      if (at >= 0) this.freeChunks.splice(at, 1);
    }
    this.oldChunks = undefined;
    this.releaseWaiting = false;
    this.endChunk0 = this.endChunk1 = undefined;
    this.lastStartsChunk = -1;
    this.keepSpares();
  }

  /**
   * Keep released chunks for the next ones, up to what a cycle of writes and compaction uses:
   * fresh memory costs a page fault per 4 KiB on first touch (~16 us each on the PVM guests
   * here, where they were a fifth of the faults at 64 callers), and the released chunks' pages
   * are already in. Beyond twice the live bytes (and the compaction minimum) they go to the GC.
   */
  private keepSpares(): void {
    let roomBytes = 2 * Math.max(this.usedTotal - this.deadTotal, arenaCompactionDeadBytesMin);
    const kept: Buffer[] = [];
    for (const spare of this.spares.sort((a, b) => b.length - a.length)) {
      if (spare.length > roomBytes) continue;
      kept.push(spare);
      roomBytes -= spare.length;
    }
    this.spares.length = 0;
    this.spares.push(...kept.reverse()); // largest last: copyIn pops it
  }

  get rowBytes(): RowBytes {
    return { live: this.liveBytes, dead: this.deadTotal, spare: this.spareBytes };
  }

  /** Row bytes of the rows the table holds now (two counters: cheap enough for every commit). */
  get liveBytes(): number {
    return this.usedTotal - this.deadTotal;
  }

  /** Bytes of released chunks kept for reuse. */
  get spareBytes(): number {
    return this.spares.reduce((n, b) => n + b.length, 0);
  }

  /**
   * Adopt `buf` whole (its bytes must never change): a function from a position in it to a
   * reference, or undefined when the arena has no room for it.
   */
  adopt(buf: Buffer): ((position: number) => number) | undefined {
    const windows = Math.max(1, Math.ceil(buf.length / arenaChunkBytes));
    if (this.chunks.length + windows > arenaChunksMax) return undefined;
    const first = this.chunks.length;
    for (let k = 0; k < windows; k++) {
      this.chunks.push(buf.subarray(k * arenaChunkBytes));
      const bytes = Math.min(arenaChunkBytes, buf.length - k * arenaChunkBytes);
      this.usedBytes[first + k] = (this.usedBytes[first + k] ?? 0) + bytes;
      this.usedTotal += bytes;
    }
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

  /** End (exclusive) in `chunk` (chunkOf(ref)) of the encoded row a reference points at. */
  rowEnd(chunk: Buffer, ref: number): number {
    const start = rowStart(ref);
    if (start === this.endStart0 && chunk === this.endChunk0) return this.endEnd0;
    if (start === this.endStart1 && chunk === this.endChunk1) return this.endEnd1;
    const number = Math.floor(ref / arenaChunkBytes);
    const end = this.rowStarts[number] !== undefined ? this.copiedRowEnd(number, start) : msgpackValueEnd(chunk, start, chunk.length);
    if (end === undefined) throw new Error(`row reference ${ref}: no whole row starts at ${start} of its arena chunk`);
    this.rememberEnd(chunk, start, end);
    return end;
  }

  /** End of the row copied in at `start` of chunk `number`, from its rowStarts; undefined when no row starts there. */
  private copiedRowEnd(number: number, start: number): number | undefined {
    const starts = this.rowStarts[number]!;
    const count = this.rowCounts[number]!;
    const next = this.lastStartsIndex + 1;
    let index = this.lastStartsChunk === number && next < count && starts[next] === start ? next : -1;
    if (index < 0) {
      let low = 0;
      let high = count - 1;
      while (low <= high) {
        const middle = (low + high) >>> 1;
        const at = starts[middle]!;
        if (at === start) {
          index = middle;
          break;
        }
        if (at < start) low = middle + 1;
        else high = middle - 1;
      }
      if (index < 0) return undefined;
    }
    this.lastStartsChunk = number;
    this.lastStartsIndex = index;
    return index + 1 < count ? starts[index + 1]! : this.usedBytes[number]!;
  }

  private rememberEnd(chunk: Buffer, start: number, end: number): void {
    this.endChunk1 = this.endChunk0;
    this.endStart1 = this.endStart0;
    this.endEnd1 = this.endEnd0;
    this.endChunk0 = chunk;
    this.endStart0 = start;
    this.endEnd0 = end;
  }

  /** A fresh row object decoded from the bytes a reference points at. */
  decode(schema: TableSchema, ref: number): Row {
    const chunk = this.chunkOf(ref);
    const start = rowStart(ref);
    return fieldsToRow(schema, rowUnpackr.unpack(chunk, { start, end: this.rowEnd(chunk, ref) }));
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
