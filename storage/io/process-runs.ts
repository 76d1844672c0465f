/** Whether a process runs, and which one it is: from kill(pid, 0) and /proc/PID/stat. */
import { readFileSync } from 'node:fs';

/**
 * The fields of /proc/PID/stat after the command name (field 3, the state, first), or undefined
 * where /proc does not say. The name (field 2) is in parentheses and may hold spaces and
 * parentheses itself: the fields start after its last ')'.
 */
function procStatFieldsFrom3(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The start time of `pid` (clock ticks since boot, field 22 of /proc/PID/stat), or undefined where /proc does not say. */
export function processStartTime(pid: number): string | undefined {
  return procStatFieldsFrom3(pid)?.[19];
}

/**
 * Whether a process with this pid runs now (another user's process counts: kill answers EPERM).
 * A zombie does not: it has ended and let go of all it held, only its parent has not reaped it
 * yet (a killed server under a supervisor slow to wait for it, or under a container's first
 * process that never does), and a LOCK naming it must not keep its store shut.
 */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = procStatFieldsFrom3(pid)?.[0];
  return state !== 'Z' && state !== 'X';
}
