/**
 * A closed-loop load: `concurrency` callers, each issuing its next operation as soon as the
 * previous one is acknowledged, for a fixed time. The latency of every operation
 * completing inside the measured window is kept; throughput is those completions over the
 * window. A warm-up period runs first; completions during it are not counted.
 * Beside latency it reports what the window cost the process: CPU (all threads) per
 * operation, the garbage collector's pauses (the usual cause of a latency tail that the
 * disk does not explain), and how busy the event loop was (near 100 %: the main thread is
 * the bound; well below: callers wait on the disk).
 */
import { performance, PerformanceObserver, type EventLoopUtilization, type PerformanceEntry } from 'node:perf_hooks';
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
  /** Process CPU time (user + system, every thread) over the measured window, per counted operation. */
  readonly cpuUsPerOp: number;
  /** Garbage-collection pauses that started inside the measured window. */
  readonly gcPauseMsMax: number;
  readonly gcPauseMsTotal: number;
  /** Share of the measured window the event loop (the main thread) spent running, 0..1. */
  readonly eventLoopBusy: number;
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
  const gcPausesMs: number[] = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as PerformanceEntry[]) {
      if (entry.startTime >= measureFromMs && entry.startTime <= endMs) gcPausesMs.push(entry.duration);
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpuAtEnd: NodeJS.CpuUsage | undefined;
  // CPU is read at the window's edges by the first caller to cross each one.
  let eluAtStart: EventLoopUtilization | undefined;
  let eluAtEnd: EventLoopUtilization | undefined;
  const cpuMark = (t: number): void => {
    if (!cpuAtStart && t >= measureFromMs) {
      cpuAtStart = process.cpuUsage();
      eluAtStart = performance.eventLoopUtilization();
    }
    if (cpuAtStart && !cpuAtEnd && t >= endMs) {
      cpuAtEnd = process.cpuUsage(cpuAtStart);
      eluAtEnd = performance.eventLoopUtilization(eluAtStart);
    }
  };
  const caller = async (index: number): Promise<void> => {
    for (let seq = 0; ; seq++) {
      const t0 = nowMs();
      cpuMark(t0);
      if (t0 >= endMs) return;
      await operation(index, seq);
      const t1 = nowMs();
      cpuMark(t1);
      // Counted when it completes inside the measured window (a deep queue may hold an
      // operation longer than the warm-up: its whole latency, queueing included, counts).
      if (t1 >= measureFromMs && t1 <= endMs) {
        samples.add(t1 - t0);
        counted++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => caller(i)));
  // Let the observer see the window's last GC entries (they are delivered asynchronously).
  await new Promise((resolve) => setImmediate(resolve));
  gcObserver.disconnect();
  if (counted === 0 || endMs <= measureFromMs) throw new Error(`runClosedLoop: no operation completed inside ${durationMs} ms`);
  const measuredMs = endMs - measureFromMs;
  const cpu = cpuAtEnd ?? (cpuAtStart ? process.cpuUsage(cpuAtStart) : { user: 0, system: 0 });
  const elu = eluAtEnd ?? performance.eventLoopUtilization(eluAtStart);
  return {
    concurrency,
    opsPerSec: (counted * 1000) / measuredMs,
    latency: samples.summary(),
    cpuUsPerOp: (cpu.user + cpu.system) / counted,
    gcPauseMsMax: gcPausesMs.reduce((a, b) => Math.max(a, b), 0),
    gcPauseMsTotal: gcPausesMs.reduce((a, b) => a + b, 0),
    eventLoopBusy: elu.utilization,
  };
}
