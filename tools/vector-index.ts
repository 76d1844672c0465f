/**
 * Cosine k-nearest search over one table's vector column, kept equal to the table by the
 * engine (onInsert / onDelete on every apply, rollback, replay and snapshot load).
 *
 * How it searches: every vector is normalised and quantised to int8 (one scale per vector)
 * in one contiguous block; a query is normalised and quantised to int16; a SIMD scan scores
 * every stored vector (see vector-kernel.ts); the `rerankDepth(k)` best approximate scores
 * are then rescored exactly in float64 against the row's own Float32Array, and the best k
 * of those are returned. There is no graph to build, so opening a store costs one pass of
 * quantisation, deletes really remove (the slot is refilled by the last one) and filters
 * are exact: a filter is applied during the scan, so k matches come back whenever k exist.
 *
 * Zero vectors have no cosine: they are held (they count in `size`) but never returned, and
 * a zero query is refused. `idColumn` must be unique in the table (it is the result id).
 * The index keeps a reference to each row's vector instead of a float copy (rows are
 * immutable), so its own memory is about `dimensions + 40` bytes per vector.
 */
import { MemoryError } from '../storage/errors.js';
import type { Row } from '../storage/schema.js';
import { vectorDimensionsMax } from '../storage/schema.js';
import type { DerivedIndex } from '../storage/store.js';
import { BestSlots } from './vector-best.js';
import { blockDimensions, createScanKernel, simdSupported, wasmPageBytes, type ScanKernel } from './vector-kernel.js';

/** Past this k a search is refused: results are meant to be read, not to dump the table. */
export const searchKMax = 1000;
/** Stored codes use the int8 range symmetrically. */
const codeMax = 127;
/** Query codes use up to the int16 range, less when int32 sums could overflow (see queryCodeMax). */
const queryCodeLimit = 32_767;
const int32Max = 2_147_483_647;
/** Vector slots added when the code block is full, at least, and the growth factor past that. */
const capacityMin = 1024;
const capacityGrowth = 2;
/** The query area is sized for the largest vector a table accepts, so the code block never moves. */
const codesOffset = vectorDimensionsMax * 2;

/**
 * How many approximate best are rescored exactly. Measured here on random 384-dimension
 * vectors (the worst case for quantisation: neighbours are nearly tied) recall@10 is 1.0
 * from 4k + 40 on; the exact rescore of that many costs well under a millisecond.
 */
export function rerankDepth(k: number): number {
  return 4 * k + 40;
}

export interface VectorIndexOptions {
  readonly table: string;
  readonly idColumn: string;
  readonly vectorColumn: string;
  /** Use the JavaScript scan even when WebAssembly SIMD is available (tests compare the two). */
  readonly scalarScan?: boolean;
}

export interface VectorHit {
  readonly id: string;
  /** Cosine similarity in [-1, 1], computed exactly in float64. */
  readonly score: number;
}

export class VectorIndex implements DerivedIndex {
  readonly table: string;
  readonly idColumn: string;
  readonly vectorColumn: string;
  private readonly scalarScan: boolean;

  /** Created with the first vector: a WebAssembly memory reserves address space, so empty indexes hold none. */
  private kernelHeld: ScanKernel | undefined;
  /** Vector length of every held vector; undefined until the first one, reset when empty. */
  private dims: number | undefined;
  private stride = 0;
  private capacity = 0;
  private count = 0;
  private ids: string[] = [];
  private vectors: Float32Array[] = [];
  private invNorms = new Float64Array(0);
  /** code * codeScales[slot] ≈ component of the normalised vector. */
  private codeScales = new Float64Array(0);
  private readonly slotById = new Map<string, number>();
  private readonly zeroIds = new Set<string>();

  constructor(options: VectorIndexOptions) {
    this.table = options.table;
    this.idColumn = options.idColumn;
    this.vectorColumn = options.vectorColumn;
    this.scalarScan = options.scalarScan ?? false;
  }

  /** Rows held, zero vectors included. */
  get size(): number {
    return this.count + this.zeroIds.size;
  }

  /** Length of the held vectors; undefined while the index is empty. */
  get dimensions(): number | undefined {
    return this.dims;
  }

  /** True when the scan runs in WebAssembly SIMD (else the scalar JavaScript loop). */
  get simd(): boolean {
    return !this.scalarScan && simdSupported();
  }

  has(id: string): boolean {
    return this.slotById.has(id) || this.zeroIds.has(id);
  }

  onInsert(row: Row): void {
    const id = this.idOf(row);
    const vector = row[this.vectorColumn];
    // A row without a vector (nullable column) is simply not indexed.
    if (vector === null || vector === undefined) return;
    if (!(vector instanceof Float32Array)) {
      throw new MemoryError('invalid_argument', `${this.table}.${this.vectorColumn} must be a Float32Array`);
    }
    // Check before touching anything, so a refused row leaves the index as it was. A row
    // replacing the only held one may change the dimension, as into an empty index.
    const replacesAll = this.size === 1 && this.has(id);
    this.checkDimensions(vector.length, 'row', !replacesAll);
    const { sumSquares, absMax } = magnitude(vector);
    if (!Number.isFinite(sumSquares)) {
      throw new MemoryError('invalid_argument', `${this.table}.${this.vectorColumn} of ${id} is not finite`);
    }
    // The engine sends delete-then-insert for an update; a bare second insert replaces too.
    if (this.has(id)) this.remove(id);
    if (this.dims === undefined) {
      // Empty: the vector length may change, and with it the code layout.
      this.dims = vector.length;
      this.stride = Math.ceil(vector.length / blockDimensions) * blockDimensions;
      this.capacity = 0;
    }
    if (sumSquares === 0) {
      this.zeroIds.add(id);
      return;
    }
    if (this.count === this.capacity) this.grow();
    const slot = this.count++;
    const norm = Math.sqrt(sumSquares);
    const codes = new Int8Array(this.kernel.memory.buffer, codesOffset + slot * this.stride, this.stride);
    const toCode = codeMax / absMax;
    for (let d = 0; d < vector.length; d++) codes[d] = Math.round(vector[d]! * toCode);
    codes.fill(0, vector.length);
    this.ids[slot] = id;
    this.vectors[slot] = vector;
    this.invNorms[slot] = 1 / norm;
    this.codeScales[slot] = absMax / (codeMax * norm);
    this.slotById.set(id, slot);
  }

  onDelete(row: Row): void {
    // Unknown ids are rows that were never indexed (no vector): nothing to remove.
    this.remove(this.idOf(row));
  }

  clear(): void {
    // Drop the kernel: WebAssembly memory cannot shrink, so a cleared index lets it go.
    this.kernelHeld = undefined;
    this.dims = undefined;
    this.stride = 0;
    this.capacity = 0;
    this.count = 0;
    this.ids = [];
    this.vectors = [];
    this.invNorms = new Float64Array(0);
    this.codeScales = new Float64Array(0);
    this.slotById.clear();
    this.zeroIds.clear();
  }

  /**
   * The k held vectors most cosine-similar to `query` (best first, ties by id), among ids
   * the filter accepts. Returns fewer than k only when fewer than k match.
   */
  search(query: Float32Array, k: number, filter?: (id: string) => boolean): VectorHit[] {
    if (!Number.isInteger(k) || k < 1 || k > searchKMax) {
      throw new MemoryError('invalid_argument', `k must be an integer in 1..${searchKMax} (got ${k})`);
    }
    if (!(query instanceof Float32Array)) throw new MemoryError('invalid_argument', 'query must be a Float32Array');
    const { sumSquares, absMax } = magnitude(query);
    if (!Number.isFinite(sumSquares)) throw new MemoryError('invalid_argument', 'query has non-finite components');
    if (sumSquares === 0) throw new MemoryError('invalid_argument', 'query is the zero vector: cosine similarity is undefined');
    this.checkDimensions(query.length, 'query');
    if (this.dims === undefined || this.count === 0) return [];

    // Quantise the query into the kernel's query area and score every slot.
    const buffer = this.kernel.memory.buffer;
    const queryCodes = new Int16Array(buffer, 0, this.stride);
    const toCode = queryCodeMax(this.stride) / absMax;
    for (let d = 0; d < query.length; d++) queryCodes[d] = Math.round(query[d]! * toCode);
    queryCodes.fill(0, query.length);
    const scoresOffset = this.scoresOffset();
    this.kernel.scan(0, codesOffset, this.count, this.stride / blockDimensions, scoresOffset);
    const rawScores = new Int32Array(buffer, scoresOffset, this.count);

    // Keep the best approximate candidates; ask the filter only about slots that would enter.
    const best = new BestSlots(Math.min(this.count, rerankDepth(k)));
    const codeScales = this.codeScales;
    for (let slot = 0; slot < this.count; slot++) {
      const approx = rawScores[slot]! * codeScales[slot]!;
      if (approx <= best.threshold) continue;
      if (filter && !filter(this.ids[slot]!)) continue;
      best.offer(approx, slot);
    }

    // Rescore exactly; the order is by score, then id, so equal inputs give equal answers.
    const invQueryNorm = 1 / Math.sqrt(sumSquares);
    const hits: VectorHit[] = best.slotList().map((slot) => {
      const vector = this.vectors[slot]!;
      let dot = 0;
      for (let d = 0; d < vector.length; d++) dot += vector[d]! * query[d]!;
      return { id: this.ids[slot]!, score: dot * invQueryNorm * this.invNorms[slot]! };
    });
    hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return hits.slice(0, k);
  }

  private idOf(row: Row): string {
    const id = row[this.idColumn];
    if (typeof id !== 'string') throw new MemoryError('invalid_argument', `${this.table}.${this.idColumn} must be a string`);
    return id;
  }

  private checkDimensions(length: number, what: 'row' | 'query', againstHeld = true): void {
    if (length === 0 || length > vectorDimensionsMax) {
      throw new MemoryError('limit_exceeded', `${what} vector has ${length} dimensions (1..${vectorDimensionsMax})`);
    }
    if (againstHeld && this.dims !== undefined && length !== this.dims) {
      throw new MemoryError('invalid_argument', `${what} vector has ${length} dimensions; ${this.table}.${this.vectorColumn} holds ${this.dims}`);
    }
  }

  private remove(id: string): void {
    if (this.zeroIds.delete(id)) {
      if (this.size === 0) this.dims = undefined;
      return;
    }
    const slot = this.slotById.get(id);
    if (slot === undefined) return;
    this.slotById.delete(id);
    // Fill the hole with the last slot so the scanned block stays dense.
    const last = --this.count;
    if (slot !== last) {
      const codes = new Int8Array(this.kernel.memory.buffer);
      codes.copyWithin(codesOffset + slot * this.stride, codesOffset + last * this.stride, codesOffset + (last + 1) * this.stride);
      const movedId = this.ids[last]!;
      this.ids[slot] = movedId;
      this.vectors[slot] = this.vectors[last]!;
      this.invNorms[slot] = this.invNorms[last]!;
      this.codeScales[slot] = this.codeScales[last]!;
      this.slotById.set(movedId, slot);
    }
    this.ids.length = last;
    this.vectors.length = last;
    if (this.size === 0) this.dims = undefined;
  }

  private get kernel(): ScanKernel {
    this.kernelHeld ??= createScanKernel({ preferScalar: this.scalarScan });
    return this.kernelHeld;
  }

  private scoresOffset(): number {
    return codesOffset + this.capacity * this.stride;
  }

  private grow(): void {
    const capacity = Math.max(capacityMin, this.capacity * capacityGrowth);
    const bytesNeeded = codesOffset + capacity * this.stride + capacity * 4;
    const pagesNeeded = Math.ceil(bytesNeeded / wasmPageBytes);
    const pagesHeld = this.kernel.memory.buffer.byteLength / wasmPageBytes;
    if (pagesNeeded > pagesHeld) {
      try {
        this.kernel.memory.grow(pagesNeeded - pagesHeld);
      } catch {
        throw new MemoryError('limit_exceeded', `${this.table}: vector index cannot grow to ${capacity} vectors of ${this.dims} dimensions`);
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
 * The largest query code such that no int32 sum can overflow: |sum| <= 127 * q * stride
 * (both vectors normalised, so each component is at most its vector's largest one).
 */
function queryCodeMax(stride: number): number {
  return Math.min(queryCodeLimit, Math.floor(int32Max / (codeMax * stride)));
}

/** Squared length and largest absolute component, in one pass. */
function magnitude(vector: Float32Array): { sumSquares: number; absMax: number } {
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
