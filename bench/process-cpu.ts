/**
 * CPU time of another process (a server the benchmark spawned), so a figure can say how much
 * work one call costs, which a crowded 2-core machine does not blur the way it blurs wall time.
 * Linux only (/proc); elsewhere undefined.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Linux USER_HZ: /proc/PID/stat counts CPU time in these. */
const clockTicksPerSec = 100;

/**
 * On-CPU milliseconds of every live thread of `pid` so far: the sum of each thread's
 * schedstat (nanoseconds, so a few hundred calls are measured exactly), or, where schedstat is
 * not compiled in, utime + stime from /proc/PID/stat (10 ms ticks).
 */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    let totalNs = 0;
    for (const thread of readdirSync(`/proc/${pid}/task`)) {
      totalNs += Number(readFileSync(`/proc/${pid}/task/${thread}/schedstat`, 'utf8').split(' ')[0]);
    }
    if (Number.isFinite(totalNs) && totalNs > 0) return totalNs / 1e6;
  } catch {
    // no schedstat (or a thread ended while we read): fall back to the coarse counters
  }
  return statCpuMs(`/proc/${pid}/stat`);
}

/**
 * CPU (user + system) this process's main thread has spent, in ms (10 ms resolution); NaN where
 * there is no /proc. GC helpers, the thread pool and workers are left out, unlike process.cpuUsage().
 */
export function mainThreadCpuMs(): number {
  return statCpuMs(`/proc/self/task/${process.pid}/stat`) ?? Number.NaN;
}

/** utime + stime of a /proc stat file (a process's or a thread's), in ms. */
function statCpuMs(statPath: string): number | undefined {
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(statPath, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSec;
  } catch {
    return undefined;
  }
}

/** User + system CPU of this process, in milliseconds. */
export function ownCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/** A process counts as quiet once it used at most this share of one core over `quietWindowMs`. */
export const quietCoreShareMax = 0.05;
export const quietWindowMs = 500;
export const quietWaitMsMax = 90_000;

/**
 * Resolves once `pid` has gone quiet, with how long that took: a freshly started server first
 * runs its start-up work (embedded Postgres initialises its cluster on a new data dir: ~10 s of
 * CPU here), which timed calls must not share the two cores with. Gives up after quietWaitMsMax.
 */
export async function waitUntilQuiet(pid: number | undefined): Promise<{ waitedMs: number; quiet: boolean }> {
  const startMs = performance.now();
  let beforeMs = processCpuMs(pid);
  if (beforeMs === undefined) return { waitedMs: 0, quiet: false };
  while (performance.now() - startMs < quietWaitMsMax) {
    await new Promise((resolve) => setTimeout(resolve, quietWindowMs));
    const afterMs = processCpuMs(pid);
    if (afterMs === undefined) break;
    if (afterMs - beforeMs <= quietCoreShareMax * quietWindowMs) return { waitedMs: performance.now() - startMs, quiet: true };
    beforeMs = afterMs;
  }
  return { waitedMs: performance.now() - startMs, quiet: false };
}
