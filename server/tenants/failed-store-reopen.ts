/**
 * When the registry reopens a tenant's failed store (a fdatasync failed: the store refuses writes
 * until reopened; the engine cut what it had not acknowledged off the log, so the replay gives
 * exactly the acknowledged state). A request for the failed store reopens it once it is idle and
 * its wait is over; meanwhile requests are refused `unavailable` with Retry-After. The first wait
 * runs from when the registry first saw the store failed; each reopen doubles the next one, up to
 * the maximum, so a dead disk is not hammered: a reopened store that fails again, or whose open
 * fails, waits longer. A reopened store still sound once its wait is over forgets the backoff.
 */
import { MemoryError, type StoreFailureKind } from '../../storage/errors.js';

/** The wait before the first reopen of a failed store. */
export const failedStoreReopenDelayMsMin = 5_000;
/** The longest wait between two reopens of a store that keeps failing. */
export const failedStoreReopenDelayMsMax = 5 * 60_000;
/** Tenants whose backoff is remembered at most (the oldest is forgotten first): memory stays bounded whatever the tenant count. */
export const failedStoreBackoffsRememberedMax = 10_000;

/** Why a store failed, as its callers are told meanwhile, and what that means for what it acknowledged. */
const failureSaid: Record<StoreFailureKind, { readonly why: string; readonly acknowledged: string }> = {
  fdatasync_failed: { why: 'the disk did not make a write durable', acknowledged: 'nothing acknowledged was lost' },
  writer_out_of_step: { why: 'its log writer fell out of step', acknowledged: 'nothing acknowledged was lost' },
  files_deleted: { why: 'its files were deleted while it was open', acknowledged: 'what it held is gone unless an operator restores it from a backup' },
};

/**
 * A request for a failed store before its reopen is due: retryable, with when to retry. `kind`:
 * why the open store failed; absent when its last reopen's open failed (the server log says why).
 */
export class StoreReopenPending extends MemoryError {
  constructor(tenant: string, readonly retryAfterMs: number, kind?: StoreFailureKind) {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    const said = kind === undefined ? undefined : failureSaid[kind];
    super('unavailable', said === undefined
      ? `the store of tenant ${tenant} could not be reopened and refuses work until it is tried again, in about ${seconds} s (the server log says why)`
      : `the store of tenant ${tenant} failed (${said.why}) and refuses work until it is reopened, in about ${seconds} s`,
    `retry after ${seconds} s${said === undefined ? '' : `; ${said.acknowledged}`}`);
  }
}

interface Backoff {
  /** The wait the next reopen sets. */
  delayMs: number;
  /** No reopen (nor, after a failed one, open) before this. */
  notBeforeMs: number;
  /** The last reopen's open failed: the next open waits for notBeforeMs too. */
  openFailed: boolean;
}

export class FailedStoreReopens {
  /** Insertion order is first-failure order: the first entry is the oldest. */
  private readonly backoffs = new Map<string, Backoff>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  /**
   * The tenant's open store is failed: undefined when it is to be reopened now (counted as a
   * reopen: the next wait doubles), else the refusal to answer meanwhile. `held`: other work
   * still holds the store, so it cannot be closed yet.
   */
  reopenRefusal(tenant: string, held: boolean, kind?: StoreFailureKind): StoreReopenPending | undefined {
    const nowMs = this.nowMs();
    let backoff = this.backoffs.get(tenant);
    if (backoff === undefined) {
      backoff = { delayMs: failedStoreReopenDelayMsMin, notBeforeMs: nowMs + failedStoreReopenDelayMsMin, openFailed: false };
      this.backoffs.set(tenant, backoff);
      if (this.backoffs.size > failedStoreBackoffsRememberedMax) this.backoffs.delete(this.backoffs.keys().next().value!);
    }
    if (nowMs < backoff.notBeforeMs) return new StoreReopenPending(tenant, backoff.notBeforeMs - nowMs, kind);
    if (held) return new StoreReopenPending(tenant, failedStoreReopenDelayMsMin, kind);
    backoff.delayMs = Math.min(backoff.delayMs * 2, failedStoreReopenDelayMsMax);
    backoff.notBeforeMs = nowMs + backoff.delayMs;
    backoff.openFailed = false;
    return undefined;
  }

  /** The tenant has no open store: undefined when it may be opened now, else the refusal (its last reopen's open failed and its wait runs). */
  openRefusal(tenant: string): StoreReopenPending | undefined {
    const backoff = this.backoffs.get(tenant);
    if (backoff === undefined || !backoff.openFailed) return undefined;
    return this.reopenRefusal(tenant, false);
  }

  /** An open failed: if it was a reopen's, the next open waits for the backoff too. */
  openFailed(tenant: string): void {
    const backoff = this.backoffs.get(tenant);
    if (backoff !== undefined) backoff.openFailed = true;
  }

  /** A request found the tenant's open store sound: once its wait is over, the backoff is forgotten. */
  sound(tenant: string): void {
    const backoff = this.backoffs.get(tenant);
    if (backoff !== undefined && this.nowMs() >= backoff.notBeforeMs) this.backoffs.delete(tenant);
  }
}
