/**
 * Latency statistics for benchmarks: nearest-rank percentiles over every sample (no
 * histogram buckets, no sampling), so p99 of 1,000 samples is the 990th slowest.
 */

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** p99.9: the stalls a p99 does not see (one in a thousand: a 100 ms stall a few times a minute). */
  readonly p999Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

/** Nearest-rank percentile of ascending `sorted` samples; p in (0, 100]. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) throw new Error('percentile of no samples');
  if (!(p > 0 && p <= 100)) throw new Error(`percentile ${p} outside (0, 100]`);
  // Less a hair: 99.9 has no exact binary form, and 99.9 % of 1,000 must be rank 999, not 1,000.
  const rank = Math.ceil((p / 100) * sorted.length - 1e-7);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarise(samplesMs: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samplesMs).sort();
  let total = 0;
  for (const x of sorted) total += x;
  return {
    count: sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    maxMs: sorted[sorted.length - 1]!,
    meanMs: total / sorted.length,
  };
}

/** Chunks of a Samples buffer double from the first size up to the last (512 KiB). */
const samplesChunkFirst = 1024;
const samplesChunkMax = 64 * 1024;

/**
 * A sample buffer that does not allocate per sample (keeps GC out of the figures) and never
 * copies what it holds: it grows by whole chunks. Doubling one array copied megabytes into fresh
 * memory in the middle of a measured run (a page fault per 4 KiB, ~16 us each on the PVM guests
 * here: several milliseconds of stall charged to whatever was in flight).
 */
export class Samples {
  private readonly full: Float64Array[] = [];
  private current: Float64Array;
  private used = 0;
  private length = 0;

  constructor(firstChunk = samplesChunkFirst) {
    this.current = new Float64Array(Math.min(samplesChunkMax, Math.max(16, firstChunk)));
  }

  get count(): number {
    return this.length;
  }

  add(valueMs: number): void {
    if (this.used === this.current.length) {
      this.full.push(this.current);
      this.current = new Float64Array(Math.min(samplesChunkMax, this.current.length * 2));
      this.used = 0;
    }
    this.current[this.used++] = valueMs;
    this.length++;
  }

  /** Every sample, in the order added (a copy). */
  values(): Float64Array {
    const all = new Float64Array(this.length);
    let at = 0;
    for (const chunk of this.full) {
      all.set(chunk, at);
      at += chunk.length;
    }
    all.set(this.current.subarray(0, this.used), at);
    return all;
  }

  summary(): LatencySummary {
    return summarise(this.values());
  }
}

/** Milliseconds since an arbitrary origin, with sub-microsecond resolution. */
export function nowMs(): number {
  return performance.now();
}
