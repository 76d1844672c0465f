/**
 * Observation hooks (access log, audit, metrics) run after the answer, never before it: the
 * SDK hands a handler's result to the transport in the microtasks that follow the handler,
 * and setImmediate runs after those, so a hook's work (an access-log row, its encode, the
 * store call it starts) is off the caller's latency. The event is complete when it is queued.
 *
 * The hooks of one turn of the event loop share one setImmediate (a busy server answers many
 * calls per turn): run in the order queued, each on its own (a throw is logged, the rest run).
 */
import type { Logger } from '../log.js';

interface QueuedHook {
  readonly log: Logger;
  readonly hookName: string;
  readonly hook: () => void;
}

let queued: QueuedHook[] = [];

function runQueued(): void {
  const hooks = queued;
  queued = [];
  for (const { log, hookName, hook } of hooks) {
    try {
      hook();
    } catch (error) {
      log.error({ err: error }, `${hookName} hook threw`);
    }
  }
}

/** Runs `hook` once the current answer has been sent; a throw is logged, never propagated. */
export function afterAnswer(log: Logger, hookName: string, hook: () => void): void {
  // Hooks queued while the queue runs go to the next turn, as with a setImmediate of their own.
  if (queued.length === 0) setImmediate(runQueued);
  queued.push({ log, hookName, hook });
}
