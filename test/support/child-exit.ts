/** How a child process ended: its exit code, or the signal that ended it. */
import type { ChildProcess } from 'node:child_process';

export interface ChildEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * The child's end: at once when it has already ended, else at its 'exit' event. A kill() only
 * sends the signal; awaiting this is what says the process is gone (its LOCK stale, its files
 * closed). 'exit', not 'close': an orphaned grandchild may hold the pipes open.
 */
export function childExit(child: ChildProcess): Promise<ChildEnd> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}
