/**
 * Where a batch's fdatasync runs: on the libuv thread pool (the default), or inline, on the
 * writer's own thread, when nothing else could use that thread meanwhile.
 *
 * Why: a batch synced on the pool costs two thread hand-offs on the latency path (main thread ->
 * pool to start the fdatasync, pool -> main thread to acknowledge), and on this VM (a PVM guest)
 * each wake-up of another thread costs ~40-50 us on the calling thread plus the woken thread's
 * own wake-up latency. A lone sequential caller (one agent over stdio) pays them on every write.
 * Inline, the write, its fdatasync and the acknowledgement run in one go, no hand-off at all.
 *
 * Under concurrency inline is wrong: it blocks the event loop while the disk works, so no call is
 * parsed, computed or written in that time, and batch N+1 can no longer be written while batch N
 * syncs. So a batch is synced inline only when the store and the process are otherwise idle:
 *  - the store (store.ts): no batch in flight, the batch is everything that waits and holds at
 *    most inlineSyncTxMax transactions (more means concurrent callers), no snapshot is written;
 *  - the process (here): no fdatasync of any commitlog is running on the pool, and the last batch
 *    synced in this thread was this log's, so several busy tenants keep syncing in parallel;
 *  - the callers (here): at most inlineSyncCallersMax distinct callers (a transport's connections,
 *    told by callerActive) made a request in the last one or two callerWindowMs. Many concurrent callers of
 *    one tenant (64 HTTP keep-alive clients) still leave the store idle now and then with a small
 *    batch; synced inline, it blocked the loop ~0.4-1.5 ms while the other callers' requests
 *    waited unread (audit benchmark: 38 % of the batches, ~12 % of the main thread's time).
 * Whichever path, the rules of the log hold: the fdatasync begins after the batch's write,
 * batches are acknowledged in offset order, a failed one fails the store.
 */

/** A batch of more transactions than this comes from concurrent callers: it syncs on the pool. */
export const inlineSyncTxMax = 4;

/**
 * More distinct callers than this active at once: their requests would wait behind an inline
 * fdatasync, so batches sync on the pool. As many as a batch may hold inline: up to that, every
 * caller can be in the batch being synced, with nothing else to wait for.
 */
export const inlineSyncCallersMax = inlineSyncTxMax;
/**
 * A caller counts as active for one to two windows of this length after its last request
 * (distinct callers are counted per window, the current one and the one before). Long enough
 * to see the concurrent callers of a loaded server (64 callers at 500 calls/s, each calling every
 * ~130 ms, are ~12 per window; at 5 ms they looked like 2-3 and batches went inline again, on a
 * main thread ~90 % busy), short enough that a caller left alone regains inline at once.
 */
export const callerWindowMs = 25;

/** The clock of the caller windows; a test seam (tests freeze it so no window passes mid-test). */
export const callerClock = { nowMs: (): number => performance.now() };

/**
 * Per thread (each worker has its own module instance and its own event loop): what the
 * commitlogs of this thread have in flight and how many callers are active. Plain counters,
 * not a registry: nothing to leak.
 */
const thread = {
  poolSyncsRunning: 0,
  /** The commitlog whose batch was synced last (an identity, compared only). */
  lastSyncedBy: undefined as object | undefined,
  /** The current caller window (callerClock time / callerWindowMs, floored), and distinct callers seen in it and the one before. */
  callerWindow: 0,
  callersInWindow: 0,
  callersInWindowBefore: 0,
};
/** The window of each caller's last request: it is counted once per window. Weak: a closed connection leaves. */
const callerWindows = new WeakMap<object, number>();

function currentCallerWindow(): number {
  const window = Math.floor(callerClock.nowMs() / callerWindowMs);
  if (window !== thread.callerWindow) {
    thread.callersInWindowBefore = window === thread.callerWindow + 1 ? thread.callersInWindow : 0;
    thread.callersInWindow = 0;
    thread.callerWindow = window;
  }
  return window;
}

/**
 * A caller (an identity: a transport's connection) made a request on this thread. A transport
 * serving one caller at a time (stdio) need not tell: no callers told counts as one.
 */
export function callerActive(caller: object): void {
  const window = currentCallerWindow();
  if (callerWindows.get(caller) === window) return;
  callerWindows.set(caller, window);
  thread.callersInWindow++;
}

/** Distinct callers that made a request in this caller window or the one before. */
export function activeCallers(): number {
  currentCallerWindow();
  return Math.max(thread.callersInWindow, thread.callersInWindowBefore);
}

/** A commitlog started a fdatasync on the pool. */
export function poolSyncStarted(log: object): void {
  thread.poolSyncsRunning++;
  thread.lastSyncedBy = log;
}

/** A fdatasync started with poolSyncStarted settled (succeeded or failed). */
export function poolSyncSettled(): void {
  if (thread.poolSyncsRunning <= 0) throw new Error('inline sync: a pool fdatasync settled that never started');
  thread.poolSyncsRunning--;
}

/** A commitlog synced a batch inline. */
export function inlineSyncDone(log: object): void {
  thread.lastSyncedBy = log;
}

/**
 * True when this thread has nothing else syncing, `log` was the last to sync and no more than
 * inlineSyncCallersMax callers are active: the thread is idle but for it.
 */
export function threadIdleFor(log: object): boolean {
  return thread.poolSyncsRunning === 0 && thread.lastSyncedBy === log && activeCallers() <= inlineSyncCallersMax;
}
