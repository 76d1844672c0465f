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
 *    synced in this thread was this log's, so several busy tenants keep syncing in parallel.
 * Whichever path, the rules of the log hold: the fdatasync begins after the batch's write,
 * batches are acknowledged in offset order, a failed one fails the store.
 */

/** A batch of more transactions than this comes from concurrent callers: it syncs on the pool. */
export const inlineSyncTxMax = 4;

/**
 * Per thread (each worker has its own module instance and its own event loop): what the
 * commitlogs of this thread have in flight. Plain counters, not a registry: nothing to leak.
 */
const thread = {
  poolSyncsRunning: 0,
  /** The commitlog whose batch was synced last (an identity, compared only). */
  lastSyncedBy: undefined as object | undefined,
};

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

/** True when this thread has nothing else syncing and `log` was the last to sync: the thread is idle but for it. */
export function threadIdleFor(log: object): boolean {
  return thread.poolSyncsRunning === 0 && thread.lastSyncedBy === log;
}
