/**
 * The vectors of one dimension, laid out for scanning: each normalised and quantised to int8
 * (one scale per vector) in one dense block of a WebAssembly memory, beside the id and a
 * reference to the row's own Float32Array for exact rescoring.
 *
 * A search quantises the query to int16, scores every slot with the SIMD kernel
 * (vector-kernel.ts), keeps the `depth` best approximate scores among slots the filter
 * accepts, and rescores those exactly in float64; then every other accepted slot whose
 * approximate score, widened by its quantisation error bound, could still reach the k-th exact
 * score is rescored too, so the k best of the hits are the exact k best.
 */
import { MemoryError } from '../storage/errors.js';
import { BestSlots } from './vector-best.js';
import { blockDimensions, createScanKernel, wasmPageBytes, type ScanKernel } from './vector-kernel.js';

/** Stored codes use the int8 range symmetrically. */
const codeMax = 127;
/** Query codes use up to the int16 range, less when int32 sums could overflow (see queryCodeMax). */
const queryCodeLimit = 32_767;
const int32Max = 2_147_483_647;
/**
 * Vector slots reserved at least, and the growth factor when the code block is full. Small:
 * WebAssembly memory grows in place within its reservation, so growing often is cheap, and
 * unused slots are dead bytes for the life of the partition.
 */
const capacityMin = 1024;
const capacityGrowth = 1.25;

export interface PartitionHit {
  readonly id: string;
  readonly score: number;
}

/** Squared length and largest absolute component, in one pass. */
export function magnitude(vector: Float32Array): { sumSquares: number; absMax: number } {
  let sumSquares = 0;
  let absMax = 0;
  for (let d = 0; d < vector.length; d++) {
    const x = vector[d]!;
    sumSquares += x * x;
    const a = Math.abs(x);
    if (a > absMax) absMax = a;
  }
  return { sumSquares, absMax };
}

export class VectorPartition {
  /** Dimensions padded to whole SIMD blocks (the padding codes are zero). */
  private readonly stride: number;
  /** Bytes before the code block: the int16 query. */
  private readonly codesOffset: number;
  private readonly kernel: ScanKernel;
  private capacity = 0;
  private count = 0;
  private readonly ids: string[] = [];
  private readonly vectors: Float32Array[] = [];
  private invNorms = new Float64Array(0);
  /** code * codeScales[slot] ≈ component of the normalised vector. */
  private codeScales = new Float64Array(0);
  private readonly slotById = new Map<string, number>();

  constructor(readonly dimensions: number, options: { scalarScan: boolean }) {
    this.stride = Math.ceil(dimensions / blockDimensions) * blockDimensions;
    this.codesOffset = this.stride * 2;
    this.kernel = createScanKernel({ preferScalar: options.scalarScan });
  }

  get size(): number {
    return this.count;
  }

  get simd(): boolean {
    return this.kernel.simd;
  }

  /** Bytes of the code block (WebAssembly memory, which process.memoryUsage does not count) and per-slot arrays. */
  get memoryBytes(): number {
    return this.kernel.memory.buffer.byteLength + this.invNorms.byteLength + this.codeScales.byteLength;
  }

  /** Adds a nonzero, finite vector of this partition's dimension under a new id. */
  add(id: string, vector: Float32Array): void {
    if (vector.length !== this.dimensions || this.slotById.has(id)) throw new Error(`VectorPartition.add: bad ${id}`);
    const { sumSquares, absMax } = magnitude(vector);
    if (!(sumSquares > 0 && Number.isFinite(sumSquares))) throw new Error(`VectorPartition.add: ${id} is zero or not finite`);
    if (this.count === this.capacity) this.grow();
    const slot = this.count++;
    const norm = Math.sqrt(sumSquares);
    const codes = new Int8Array(this.kernel.memory.buffer, this.codesOffset + slot * this.stride, this.stride);
    const toCode = codeMax / absMax;
    for (let d = 0; d < vector.length; d++) codes[d] = Math.round(vector[d]! * toCode);
    codes.fill(0, vector.length);
    this.ids[slot] = id;
    this.vectors[slot] = vector;
    this.invNorms[slot] = 1 / norm;
    this.codeScales[slot] = absMax / (codeMax * norm);
    this.slotById.set(id, slot);
  }

  /** Removes an id; false when it is not held. The last slot fills the hole, so the block stays dense. */
  remove(id: string): boolean {
    const slot = this.slotById.get(id);
    if (slot === undefined) return false;
    this.slotById.delete(id);
    const last = --this.count;
    if (slot !== last) {
      const bytes = new Int8Array(this.kernel.memory.buffer);
      const from = this.codesOffset + last * this.stride;
      bytes.copyWithin(this.codesOffset + slot * this.stride, from, from + this.stride);
      const movedId = this.ids[last]!;
      this.ids[slot] = movedId;
      this.vectors[slot] = this.vectors[last]!;
      this.invNorms[slot] = this.invNorms[last]!;
      this.codeScales[slot] = this.codeScales[last]!;
      this.slotById.set(movedId, slot);
    }
    this.ids.length = last;
    this.vectors.length = last;
    return true;
  }

  /**
   * The `depth` best by approximate score among ids the filter accepts, rescored exactly
   * (cosine, float64), in no particular order. The query is nonzero, finite, of this dimension.
   * Every accepted slot whose approximate score, widened by its quantisation error bound, could
   * reach the k-th best exact score is rescored too, so the k best among the hits are the exact k
   * best (approximate scores can all tie when a large component rounds the others to code 0).
   */
  candidates(query: Float32Array, depth: number, filter?: (id: string) => boolean, k: number = depth): PartitionHit[] {
    if (this.count === 0) return [];
    const { sumSquares, absMax } = magnitude(query);
    const buffer = this.kernel.memory.buffer;
    const queryCodes = new Int16Array(buffer, 0, this.stride);
    const toCode = queryCodeMax(this.stride) / absMax;
    for (let d = 0; d < query.length; d++) queryCodes[d] = Math.round(query[d]! * toCode);
    queryCodes.fill(0, query.length);
    const scoresOffset = this.codesOffset + this.capacity * this.stride;
    this.kernel.scan(0, this.codesOffset, this.count, this.stride / blockDimensions, scoresOffset);
    const rawScores = new Int32Array(buffer, scoresOffset, this.count);

    // The filter is asked only about slots whose score would enter: most are rejected first.
    // Equal approximate scores (equal vectors have them) rank by id, as the results do: which of
    // more equal scores than `depth` are kept must not depend on the slots' order (a reopen
    // from a snapshot rebuilds them in another order).
    const ids = this.ids;
    const best = new BestSlots(Math.min(this.count, depth), (a, b) => ids[a]! < ids[b]!);
    const codeScales = this.codeScales;
    for (let slot = 0; slot < this.count; slot++) {
      const approx = rawScores[slot]! * codeScales[slot]!;
      const threshold = best.threshold;
      if (approx < threshold || (approx === threshold && !best.admits(approx, slot))) continue;
      if (filter && !filter(this.ids[slot]!)) continue;
      best.offer(approx, slot);
    }

    const invQueryNorm = 1 / Math.sqrt(sumSquares);
    const exact = (slot: number): PartitionHit => {
      const vector = this.vectors[slot]!;
      let dot = 0;
      for (let d = 0; d < vector.length; d++) dot += vector[d]! * query[d]!;
      // Rounding can land a hair outside [-1, 1] (1 + 2^-52 for a vector against itself): a cosine never is.
      return { id: this.ids[slot]!, score: Math.min(1, Math.max(-1, dot * invQueryNorm * this.invNorms[slot]!)) };
    };
    const kept = best.slotList();
    const hits = kept.map(exact);
    if (hits.length < k || kept.length === this.count) return hits;

    // approx = t * (v/|v| . q) + error, t = toCode: with stored codes off by at most half a code
    // (codeScale in normalised units) and query codes by at most 1/2, the error is at most
    // t * codeScale/2 * |q|_1 + |v/|v||_1 / 2 + codeScale/4 * dimensions (|v/|v||_1 <= sqrt(dimensions)).
    let queryL1 = 0;
    for (let d = 0; d < query.length; d++) queryL1 += Math.abs(query[d]!);
    const cosineUnit = toCode * Math.sqrt(sumSquares); // approx / cosineUnit ≈ cosine
    const kth = hits.map((h) => h.score).sort((a, b) => b - a)[k - 1]!;
    const floor = kth * cosineUnit;
    const slack = 1 + 1e-9;
    const fixedError = 0.5 * Math.sqrt(this.dimensions);
    const inKept = new Uint8Array(this.count);
    for (const slot of kept) inKept[slot] = 1;
    for (let slot = 0; slot < this.count; slot++) {
      if (inKept[slot] === 1) continue;
      const scale = codeScales[slot]!;
      const error = (0.5 * scale * (toCode * queryL1 + 0.5 * this.dimensions) + fixedError) * slack + 1e-9 * cosineUnit;
      if (rawScores[slot]! * scale + error < floor) continue;
      if (filter && !filter(this.ids[slot]!)) continue;
      hits.push(exact(slot));
    }
    return hits;
  }

  private grow(): void {
    const capacity = Math.max(capacityMin, Math.ceil(this.capacity * capacityGrowth));
    const bytesNeeded = this.codesOffset + capacity * this.stride + capacity * 4; // codes + int32 scores
    const pagesNeeded = Math.ceil(bytesNeeded / wasmPageBytes);
    const pagesHeld = this.kernel.memory.buffer.byteLength / wasmPageBytes;
    if (pagesNeeded > pagesHeld) {
      try {
        this.kernel.memory.grow(pagesNeeded - pagesHeld);
      } catch {
        throw new MemoryError('limit_exceeded', `the vector index cannot grow to ${capacity} vectors of ${this.dimensions} dimensions`);
      }
    }
    const invNorms = new Float64Array(capacity);
    invNorms.set(this.invNorms.subarray(0, this.count));
    const codeScales = new Float64Array(capacity);
    codeScales.set(this.codeScales.subarray(0, this.count));
    this.invNorms = invNorms;
    this.codeScales = codeScales;
    this.capacity = capacity;
  }
}

/**
 * The largest query code such that no int32 sum can overflow: every stored code is at most
 * 127 in magnitude and every query code at most q, so |sum| <= 127 * q * stride.
 */
function queryCodeMax(stride: number): number {
  return Math.min(queryCodeLimit, Math.floor(int32Max / (codeMax * stride)));
}
