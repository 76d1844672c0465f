/**
 * The byte position of each frame of a segment, by offset - firstOffset: appended once per
 * frame, read by index. Kept in fixed chunks of 32-bit integers, never one growing array: a
 * 64 MiB segment holds ~300k frames, and growing a JS array that size copies it and allocates
 * a fresh multi-megabyte block (a few hundred page faults at ~16 us each on the PVM guests
 * here) inside a commit acknowledgement. Appending here touches one small chunk at a time.
 */
const chunkEntries = 8192;
/** Positions are byte positions in one segment file: below 4 GiB (segments rotate near 64 MiB). */
const positionMax = 0xffff_ffff;

export class FramePositions {
  private readonly chunks: Uint32Array[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(position: number): void {
    if (!(Number.isInteger(position) && position >= 0 && position <= positionMax)) {
      throw new Error(`frame position ${position} outside 0..${positionMax}`);
    }
    const at = this.count % chunkEntries;
    if (at === 0) this.chunks.push(new Uint32Array(chunkEntries));
    this.chunks[this.chunks.length - 1]![at] = position;
    this.count++;
  }

  /** Position of frame `index` (0 <= index < length). */
  at(index: number): number {
    if (!(index >= 0 && index < this.count)) throw new Error(`frame index ${index} outside 0..${this.count - 1}`);
    return this.chunks[Math.floor(index / chunkEntries)]![index % chunkEntries]!;
  }

  /** Positions of frames from..to-1 (to clamped to length), as a new array. */
  slice(from: number, to: number = this.count): Float64Array<ArrayBuffer> {
    const end = Math.min(to, this.count);
    const out = new Float64Array(Math.max(0, end - from));
    for (let i = from; i < end; i++) out[i - from] = this.chunks[Math.floor(i / chunkEntries)]![i % chunkEntries]!;
    return out;
  }
}
