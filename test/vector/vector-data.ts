/**
 * Seeded vectors for the vector index tests and benchmarks: the same seed gives the same
 * vectors on every run, and exact cosine search to compare the index against.
 */

/** A 32-bit linear congruential generator: deterministic, fast, good enough for test data. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Standard normal samples by Box-Muller. */
export function seededGaussian(seed: number): () => number {
  const random = seededRandom(seed);
  return () => Math.sqrt(-2 * Math.log(random() + Number.EPSILON)) * Math.cos(2 * Math.PI * random());
}

/** `count` vectors with independent normal components: directions uniform on the sphere. */
export function randomVectors(count: number, dims: number, seed: number): Float32Array[] {
  const gaussian = seededGaussian(seed);
  return Array.from({ length: count }, () => Float32Array.from({ length: dims }, gaussian));
}

export interface ExactHit {
  readonly index: number;
  readonly score: number;
}

/** Exact cosine top-k over `vectors` (by brute force, float64), among indexes `accept` allows. */
export function exactTopK(vectors: readonly Float32Array[], query: Float32Array, k: number, accept?: (index: number) => boolean): ExactHit[] {
  const queryNorm = Math.sqrt(dot(query, query));
  const hits: ExactHit[] = [];
  vectors.forEach((v, index) => {
    if (accept && !accept(index)) return;
    const norm = Math.sqrt(dot(v, v));
    if (norm === 0) return;
    hits.push({ index, score: dot(v, query) / (norm * queryNorm) });
  });
  hits.sort((a, b) => b.score - a.score);
  return hits.slice(0, k);
}

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}
