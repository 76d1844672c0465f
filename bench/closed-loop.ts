/**
 * A closed-loop load: `concurrency` callers, each issuing its next operation as soon as the
 * previous one is acknowledged, for a fixed time. The latency of every operation
 * completing inside the measured window is kept; throughput is those completions over the
 * window. A warm-up period runs first; completions during it are not counted.
 */
import { nowMs, Samples, type LatencySummary } from './stats.js';

export interface ClosedLoopOptions {
  readonly concurrency: number;
  /** Measured time; with `stopWhen`, the longest it may run. */
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Stop early when this settles (e.g. a snapshot finishing); throughput uses the time actually run. */
  readonly stopWhen?: Promise<unknown>;
  /** One operation by caller `caller`, its `seq`-th; resolves when acknowledged. */
  readonly operation: (caller: number, seq: number) => Promise<unknown>;
}

export interface ClosedLoopResult {
  readonly concurrency: number;
  readonly opsPerSec: number;
  readonly latency: LatencySummary;
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const { concurrency, durationMs, warmupMs, operation } = options;
  if (!(concurrency >= 1 && durationMs > 0 && warmupMs >= 0)) throw new Error('runClosedLoop: bad options');
  const samples = new Samples(64 * 1024);
  const startMs = nowMs();
  const measureFromMs = startMs + warmupMs;
  let endMs = measureFromMs + durationMs;
  let counted = 0;
  const stop = () => void (endMs = Math.max(measureFromMs, Math.min(endMs, nowMs())));
  options.stopWhen?.then(stop, stop);
  const caller = async (index: number): Promise<void> => {
    for (let seq = 0; ; seq++) {
      const t0 = nowMs();
      if (t0 >= endMs) return;
      await operation(index, seq);
      const t1 = nowMs();
      // Counted when it completes inside the measured window (a deep queue may hold an
      // operation longer than the warm-up: its whole latency, queueing included, counts).
      if (t1 >= measureFromMs && t1 <= endMs) {
        samples.add(t1 - t0);
        counted++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => caller(i)));
  if (counted === 0 || endMs <= measureFromMs) throw new Error(`runClosedLoop: no operation completed inside ${durationMs} ms`);
  const measuredMs = endMs - measureFromMs;
  return { concurrency, opsPerSec: (counted * 1000) / measuredMs, latency: samples.summary() };
}
