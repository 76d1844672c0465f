/**
 * What an open store holds in memory, estimated from counters its tables keep: the encoded rows
 * in their arenas (live, dead until a compaction, spare chunks; row-arena.ts) plus, per row, the
 * trees that find it (primary key string and B+tree slot, secondary index entries). The estimate
 * leaves out derived structures (the embedding index) and transient buffers (a snapshot load).
 */
/**
 * Memory per row besides its encoded bytes: measured with the memory module's object_put of the
 * sizing object (bench/sizing.ts; 200,000 objects = 400,000 rows of objects and object_versions,
 * 63.7 MB of rows), heap used + array buffers after a full GC: 127.3 MB once written (159 B per
 * row besides its bytes), 112.7 MB after a reopen from the snapshot (122 B per row). Since the
 * arena keeps each copied row's start (row-arena.ts, 4-8 B a row): 130.1 MB once written
 * (2026-11-29, 650 B per object: 166 B per row besides its bytes).
 */
export const rowOverheadBytes = 168;

/** `rowBytesHeld`: the arenas' live + dead + spare bytes (RowBytes summed). */
export function storeMemoryBytesEstimate(rowBytesHeld: number, rows: number): number {
  return rowBytesHeld + rows * rowOverheadBytes;
}
