/**
 * Observation hooks (access log, audit, metrics) run after the answer, never before it: the
 * SDK hands a handler's result to the transport in the microtasks that follow the handler,
 * and setImmediate runs after those, so a hook's work (an access-log row, its encode, the
 * store call it starts) is off the caller's latency. The event is complete when it is queued.
 */
import type { Logger } from '../log.js';

/** Runs `hook` once the current answer has been sent; a throw is logged, never propagated. */
export function afterAnswer(log: Logger, hookName: string, hook: () => void): void {
  setImmediate(() => {
    try {
      hook();
    } catch (error) {
      log.error({ err: error }, `${hookName} hook threw`);
    }
  });
}
