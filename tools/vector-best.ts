/**
 * A bounded min-heap that keeps the `capacity` highest-scoring slots seen so far. The root
 * is the weakest kept score, so a scan rejects most candidates with one comparison.
 */
export class BestSlots {
  private readonly scores: Float64Array;
  private readonly slots: Int32Array;
  private length = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`BestSlots capacity ${capacity}`);
    this.scores = new Float64Array(capacity);
    this.slots = new Int32Array(capacity);
  }

  get size(): number {
    return this.length;
  }

  get full(): boolean {
    return this.length === this.capacity;
  }

  /** The weakest kept score; -Infinity while the heap is not full (everything qualifies). */
  get threshold(): number {
    return this.length === this.capacity ? this.scores[0]! : -Infinity;
  }

  /** Offers a candidate; callers check `threshold` first to skip the call on the hot path. */
  offer(score: number, slot: number): void {
    if (this.length < this.capacity) {
      this.siftUp(this.length++, score, slot);
    } else if (score > this.scores[0]!) {
      this.siftDown(0, score, slot);
    }
  }

  /** The kept slots, in no particular order. */
  slotList(): number[] {
    return Array.from(this.slots.subarray(0, this.length));
  }

  private siftUp(at: number, score: number, slot: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (this.scores[parent]! <= score) break;
      this.scores[at] = this.scores[parent]!;
      this.slots[at] = this.slots[parent]!;
      at = parent;
    }
    this.scores[at] = score;
    this.slots[at] = slot;
  }

  private siftDown(at: number, score: number, slot: number): void {
    const n = this.length;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.scores[right]! < this.scores[left]! ? right : left;
      if (this.scores[child]! >= score) break;
      this.scores[at] = this.scores[child]!;
      this.slots[at] = this.slots[child]!;
      at = child;
    }
    this.scores[at] = score;
    this.slots[at] = slot;
  }
}
