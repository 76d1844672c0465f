/**
 * Latency statistics for benchmarks: nearest-rank percentiles over every sample (no
 * histogram buckets, no sampling), so p99 of 1,000 samples is the 990th slowest.
 */

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
}

/** Nearest-rank percentile of ascending `sorted` samples; p in (0, 100]. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) throw new Error('percentile of no samples');
  if (!(p > 0 && p <= 100)) throw new Error(`percentile ${p} outside (0, 100]`);
  const rank = Math.ceil((p / 100) * sorted.length);
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
    maxMs: sorted[sorted.length - 1]!,
    meanMs: total / sorted.length,
  };
}

/** A growable sample buffer that does not allocate per sample (keeps GC out of the figures). */
export class Samples {
  private values: Float64Array;
  private length = 0;

  constructor(capacity = 1024) {
    this.values = new Float64Array(capacity);
  }

  get count(): number {
    return this.length;
  }

  add(valueMs: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = valueMs;
  }

  summary(): LatencySummary {
    return summarise(this.values.subarray(0, this.length));
  }
}

/** Milliseconds since an arbitrary origin, with sub-microsecond resolution. */
export function nowMs(): number {
  return performance.now();
}
