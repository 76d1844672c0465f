/**
 * Whether a latency tail comes from the host: do the slow fdatasyncs of a run fall on one phase
 * of a 100 ms cycle? A host that caps a VM's CPU (Linux CFS bandwidth control, whose period is
 * 100 ms by default) stops its threads, once they have used their share of a period, until the
 * next one begins. Seen on the 2-vCPU guests here (2026-11-30): two threads spinning alone lose
 * ~1 % of their time; beside one fdatasync loop (whose I/O the host also does on the VM's
 * account) each stops for 9-15 ms every 100 ms, and the loop's fdatasyncs take 12-25 ms once
 * per 100 ms. It comes and goes with the host: the store at 64 callers had 29-56 % of its slow
 * fdatasyncs in one 10 ms phase in two of three rounds at 10:40 (15-24 % for other cycles); in
 * full benchmark runs, in none of 12 at 10:52-11:13 and in 3 of 6 at 12:25-12:35 (38-46 % against
 * 20-22 %).
 *
 * The share for other cycle lengths is the control: events with no 100 ms rhythm land in the
 * busiest 10 ms phase of any cycle about as often (more than 10 %: the busiest phase is picked).
 */

/** The cycle looked for: CFS bandwidth control's default period (cpu.cfs_period_us, 100,000). */
export const hostCycleMs = 100;
/** Cycle lengths with no common rhythm with 100 ms, for the control share. */
export const controlCyclesMs = [73, 89, 130] as const;
/** Width of the phase window counted. */
export const phaseWindowMs = 10;

/**
 * The largest share of `timesMs` that falls in one `windowMs`-wide phase window of a `cycleMs`
 * cycle (phases wrap around: a window may straddle the cycle's end). 0 for no events.
 */
export function busiestPhaseShare(timesMs: ArrayLike<number>, cycleMs: number, windowMs: number): number {
  if (!(cycleMs > 0 && windowMs > 0 && windowMs <= cycleMs)) throw new Error(`busiestPhaseShare: window ${windowMs} of cycle ${cycleMs}`);
  const n = timesMs.length;
  if (n === 0) return 0;
  const phases = Float64Array.from(timesMs, (t) => ((t % cycleMs) + cycleMs) % cycleMs).sort();
  // Each window starting at an event's phase; the events at phase p .. p + window, wrapping.
  let best = 0;
  let end = 0;
  for (let start = 0; start < n; start++) {
    const limit = phases[start]! + windowMs;
    if (end < start) end = start;
    while (end < start + n && phaseAt(phases, end, cycleMs) < limit) end++;
    best = Math.max(best, end - start);
  }
  return best / n;
}

/** The phase of the i-th event, continuing past the cycle's end for the wrap-around. */
function phaseAt(sorted: Float64Array, i: number, cycleMs: number): number {
  return i < sorted.length ? sorted[i]! : sorted[i - sorted.length]! + cycleMs;
}

export interface SlowSyncCycle {
  /** The busiest-phase share of the slow fdatasyncs (at or above the run's p99) for the 100 ms cycle, in %. */
  readonly hostCyclePercent: number;
  /** The same share for the control cycles, their mean, in %. */
  readonly controlPercent: number;
}

/** Where the slow batch fdatasyncs (at or above their p99) of a run fall: `endsMs[i]` is when sync `i`, of `syncsMs[i]`, ended. */
export function slowSyncCycle(endsMs: Float64Array, syncsMs: Float64Array, p99Ms: number): SlowSyncCycle {
  if (endsMs.length !== syncsMs.length) throw new Error(`slowSyncCycle: ${endsMs.length} end times for ${syncsMs.length} syncs`);
  const slowEnds = endsMs.filter((_, i) => syncsMs[i]! >= p99Ms);
  const control = controlCyclesMs.reduce((sum, cycle) => sum + busiestPhaseShare(slowEnds, cycle, phaseWindowMs), 0) / controlCyclesMs.length;
  return { hostCyclePercent: 100 * busiestPhaseShare(slowEnds, hostCycleMs, phaseWindowMs), controlPercent: 100 * control };
}
