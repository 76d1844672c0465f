/**
 * A bounded min-heap that keeps the `capacity` highest-scoring slots seen so far. The root
 * is the weakest kept score, so a scan rejects most candidates with one comparison.
 *
 * Equal scores are ranked by `preferred` (when given), so which of many equal scores are kept
 * does not depend on the order they were offered in: a search keeps the same vectors whether
 * its index was built by inserts, by replay or from a snapshot (in another slot order).
 */
export class BestSlots {
  private readonly scores: Float64Array;
  private readonly slots: Int32Array;
  private length = 0;

  /** preferred(a, b): slot a is kept before slot b when their scores are equal. */
  constructor(readonly capacity: number, private readonly preferred?: (a: number, b: number) => boolean) {
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

  /**
   * True when a candidate would be kept. Callers on the hot path compare with `threshold`
   * first and ask this only for a score equal to it.
   */
  admits(score: number, slot: number): boolean {
    return this.length < this.capacity || this.weaker(this.scores[0]!, this.slots[0]!, score, slot);
  }

  /** Offers a candidate; callers check `threshold` (and `admits` at equal scores) first to skip the call on the hot path. */
  offer(score: number, slot: number): void {
    if (this.length < this.capacity) {
      this.siftUp(this.length++, score, slot);
    } else if (this.weaker(this.scores[0]!, this.slots[0]!, score, slot)) {
      this.siftDown(0, score, slot);
    }
  }

  /** The kept slots, in no particular order. */
  slotList(): number[] {
    return Array.from(this.slots.subarray(0, this.length));
  }

  /** Whether (scoreA, slotA) ranks below (scoreB, slotB): a lower score, or an equal one not preferred. */
  private weaker(scoreA: number, slotA: number, scoreB: number, slotB: number): boolean {
    return scoreA < scoreB || (scoreA === scoreB && this.preferred !== undefined && this.preferred(slotB, slotA));
  }

  private siftUp(at: number, score: number, slot: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.weaker(score, slot, this.scores[parent]!, this.slots[parent]!)) break;
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
      const child = right < n && this.weaker(this.scores[right]!, this.slots[right]!, this.scores[left]!, this.slots[left]!) ? right : left;
      if (!this.weaker(this.scores[child]!, this.slots[child]!, score, slot)) break;
      this.scores[at] = this.scores[child]!;
      this.slots[at] = this.slots[child]!;
      at = child;
    }
    this.scores[at] = score;
    this.slots[at] = slot;
  }
}
