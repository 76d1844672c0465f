/**
 * Every MCP request produces an audit event (DESIGN invariant 7): tool calls, resource
 * requests, every other request (initialize, ping, tools/list, ...) and the HTTP refusals of an
 * authenticated caller — allowed or refused — become rows of the tenant's `access_log` (a system
 * reducer, so they are durable in the tenant's own commitlog), which the control runtime stages
 * into Postgres and ships to S3. Refusals before a caller is known (bad tokens, a refused
 * Origin) go straight to Postgres staging as server events.
 *
 * The append is not on the response path: the call's own effect is already durable (its
 * invocation, with caller and arguments, is in the commitlog frame); the access row follows
 * a few milliseconds later. Rows are coalesced per tenant into one append per
 * accessAppendDelayMs (or per full batch): one system transaction and at most one fdatasync
 * for many calls, where a transaction per call turned every read into a durable write and put
 * a second fdatasync in front of a sequential caller's next call.
 *
 * While writes keep coming, the append rides with one of them instead of waiting for its timer:
 * a write call about to commit (beforeWriteCall) starts the append of rows that have waited
 * accessRideAfterMs, in the same tick, so group commit puts both transactions in one batch with
 * one fdatasync. Measured before (sequential object_put over stdio, 4.7 rows per append): a
 * quarter of the calls overlapped an append's own fdatasync and took ~2.5 ms in the server
 * instead of ~1 ms (two fdatasyncs of one file in flight serialise in the filesystem).
 */
import { accessLogAppendEntriesMax, type AccessLogEntry } from '../../tools/access-log.js';
import { MemoryError, WriteNotApplied } from '../../storage/errors.js';
import { systemCaller } from '../../storage/control/run-outbox.js';
import type { Principal } from '../auth/principal.js';
import { StoreOpenNoRoom } from '../tenants/open-refusal.js';
import type { ControlRuntime, WithTenant } from '../control/control-runtime.js';
import type { Logger } from '../log.js';
import type { McpRequestEvent, ResourceRequestEvent, ToolCallEvent } from '../mcp/surface.js';

/** Object ids taken from a call's arguments into its access row (bounded like the column). */
export const accessObjectIdsMax = 20;
const idArgumentNames = ['id', 'object_id', 'src', 'dst', 'thread_id', 'instance_id', 'session_id', 'surface_id'];
const fieldCharsMax = 1024;
/** Rows one append carries: the reducer's bound, and at most this many characters of fields (frames stay small). */
export const accessRowsPerAppendMax = accessLogAppendEntriesMax;
export const accessCharsPerAppendMax = 1024 * 1024;
/**
 * How long a row may wait for the rows of the calls after it before its append starts (unless a
 * full batch is waiting). Bounds the tenant's append transactions to about 1000 / this per
 * second whatever the call rate; widens the window in which an answered call's row is not yet
 * durable by this much (the call's own effect, with its caller and arguments, is durable already).
 */
export const accessAppendDelayMs = 10;
/**
 * Rows this old ride with the next write call's commit (beforeWriteCall) rather than wait for
 * accessAppendDelayMs. Half the delay: a steady writer still coalesces several rows per append,
 * so few of its calls carry one.
 */
export const accessRideAfterMs = accessAppendDelayMs / 2;
/**
 * Rows waiting for their append, per tenant. Appends drain at group-commit speed, so this is
 * reached only when the tenant's store is failing or its disk has been full for a long while
 * (rows wait for room: appendRetrying); past it a row is refused and logged loudly.
 */
export const accessRowsWaitingMax = 100_000;
/**
 * The waits before each new try of an append the disk refused (WriteNotApplied), the last one
 * repeated for as long as the server runs. Once it shuts down (close()), refused appends are
 * tried again for their sum (5.1 s) at most, whatever the rows waiting: within the shutdown's
 * 10 s bound, so a shutdown on a full disk still ends on time.
 */
export const accessAppendRetryDelaysMs: readonly number[] = [100, 200, 400, 800, 1600, 2000];
const retryDelayMsLast = accessAppendRetryDelaysMs.at(-1)!;

export interface AccessRecorder {
  onToolCall(event: ToolCallEvent): void;
  onResourceRequest(event: ResourceRequestEvent): void;
  /** Any other MCP request (initialize, ping, tools/list, an unknown method, ...), or a WebSocket client's (with its target). */
  onRequest(event: Pick<McpRequestEvent, 'principal' | 'method' | 'target' | 'outcome'>): void;
  /**
   * A write tool call of this principal is about to commit: rows of its tenant waiting at least
   * accessRideAfterMs are appended now, in the same batch as its commit (same tick).
   */
  beforeWriteCall(principal: Principal): void;
  /**
   * An HTTP request refused before any MCP server saw it: a row of the principal's tenant when
   * it was authenticated first, else a server-level event (a bad token, a refused Origin). A GET
   * (an event stream opened) or DELETE (a session ended) of an MCP endpoint comes here whatever
   * its status: `http`, `GET /mcp`, `200`.
   */
  onRefusal(refusal: { path: string; status: number; reason: string; method?: string; principal?: Principal }): void;
  /**
   * Resolves once every row recorded so far has been appended (or its failure logged); rows the
   * disk refuses keep it waiting until there is room (a shutdown calls close() instead).
   */
  flushed(): Promise<void>;
  /**
   * Shutdown: rows the disk refuses wait for room for the sum of accessAppendRetryDelaysMs at
   * most, then are lost, loudly; resolves once flushed.
   */
  close(): Promise<void>;
  /** Rows recorded and not yet appended, over all tenants (rows the disk refuses wait here for room). */
  rowsWaiting(): number;
}

interface TenantQueue {
  rows: AccessLogEntry[];
  /** Rows taken from `rows` by the append in flight (tried again while the disk refuses it). */
  appending: number;
  /** Ends the drain's wait for more rows early (a write call to ride with), while it waits. */
  appendNow: (() => void) | undefined;
  /** Settles when the tenant's appends are done and the lease released. */
  draining: Promise<void>;
}

export function createAccessRecorder(input: {
  readonly withTenant: WithTenant;
  readonly control: () => ControlRuntime | undefined;
  readonly log: Logger;
  /** Rows that could not be appended (logged too): for the operator's metrics. */
  readonly onRowsLost?: (rows: number) => void;
}): AccessRecorder {
  const { withTenant, log } = input;
  const queues = new Map<string, TenantQueue>();
  const retries = new RetryWaits();

  const lost = (tenant: string, rows: readonly AccessLogEntry[], error: unknown): void => {
    log.error({
      tenant, err: (error as Error).message, rows: rows.length,
      first: { action: rows[0]?.action, target: rows[0]?.target, subject: rows[0]?.subject },
    }, 'access log append failed');
    input.onRowsLost?.(rows.length);
  };

  /**
   * The tenant's lease is taken as the first row arrives and kept until the queue is empty: a
   * registry shutdown waits for these rows like for any call in flight. (A process that ends
   * without closing its registry should await flushed() first.)
   */
  const drain = (tenant: string, queue: TenantQueue): Promise<void> =>
    withTenant(tenant, async (memory) => {
      const caller = systemCaller(tenant, 'access-log');
      const append = (entries: AccessLogEntry[]) => memory.store.call('access_log_append', { entries }, caller);
      while (queue.rows.length > 0) {
        if (queue.rows.length < accessRowsPerAppendMax) await waitForMoreRows(queue);
        const rows = takeBatch(queue.rows);
        queue.appending = rows.length;
        // The tenant's control-pending mark goes first: a crash after the append then leaves the rows to the next start's drain, not to the tenant's next call.
        await input.control()?.tenantChanging(tenant);
        await appendRetrying(() => append(rows), retries).catch((error: unknown) => lost(tenant, rows, error));
        queue.appending = 0;
        input.control()?.tenantChanged(tenant);
      }
    }).catch(async (error: unknown) => {
      // The store could not be leased. On a full disk (it cannot write its LOCK) the rows wait
      // for room as refused appends do, and the drain starts again (below); otherwise (shutting
      // down, a damaged store) what waits is lost, loudly.
      if (error instanceof StoreOpenNoRoom && await retries.wait(retryDelayMsLast)) return;
      lost(tenant, queue.rows.splice(0), error);
    }).finally(() => {
      if (queue.rows.length > 0) {
        queue.draining = drain(tenant, queue); // arrived after the loop's last look
        return;
      }
      if (queues.get(tenant) === queue) queues.delete(tenant);
    });

  const record = (principal: Principal, row: Omit<AccessLogEntry, 'subject'>) => {
    const tenant = principal.caller.tenant;
    const entry: AccessLogEntry = { subject: clip(principal.caller.subject) || 'unknown', ...row };
    const queue = queues.get(tenant);
    if (queue) {
      if (queue.rows.length >= accessRowsWaitingMax) {
        lost(tenant, [entry], new MemoryError('limit_exceeded', `${accessRowsWaitingMax} access rows already wait for this tenant's store (accessRowsWaitingMax)`));
        return;
      }
      queue.rows.push(entry);
      return;
    }
    const created: TenantQueue = { rows: [entry], appending: 0, appendNow: undefined, draining: Promise.resolve() };
    queues.set(tenant, created);
    created.draining = drain(tenant, created);
  };

  /** A row for a request that names no object and commits nothing: every kind but tools/call. */
  const recordRequest = (principal: Principal, action: string, target: string, outcome: string) =>
    record(principal, { action: clip(action) || '-', target: clip(target) || '-', object_ids: [], offset: null, outcome: clip(outcome) || 'unknown', at_ms: Date.now() });

  return {
    onToolCall(e) {
      record(e.principal, {
        action: 'tools/call', target: clip(e.tool) || '-', object_ids: objectIdsOf(e.args), offset: e.offset ?? null,
        outcome: clip(e.outcome) || 'unknown', at_ms: Date.now(),
      });
    },
    onResourceRequest(e) {
      recordRequest(e.principal, e.method, e.target, e.outcome);
    },
    onRequest(e) {
      recordRequest(e.principal, e.method, e.target ?? '-', e.outcome);
    },
    beforeWriteCall(principal) {
      const queue = queues.get(principal.caller.tenant);
      const oldest = queue?.rows[0];
      // The recorder always sets at_ms; a row without one is treated as old enough.
      if (queue?.appendNow !== undefined && oldest !== undefined && Date.now() - (oldest.at_ms ?? 0) >= accessRideAfterMs) queue.appendNow();
    },
    onRefusal(r) {
      const target = clip(r.method === undefined ? r.path : `${r.method} ${r.path}`);
      if (r.principal !== undefined) {
        recordRequest(r.principal, 'http', target, String(r.status));
        return;
      }
      input.control()?.auditDenial({ tenant: null, atMs: Date.now(), subject: null, action: 'http', target, outcome: String(r.status), reason: clip(r.reason) });
    },
    async flushed() {
      while (queues.size > 0) await Promise.all([...queues.values()].map((q) => q.draining));
    },
    async close() {
      retries.end();
      await this.flushed();
    },
    rowsWaiting() {
      let rows = 0;
      for (const queue of queues.values()) rows += queue.rows.length + queue.appending;
      return rows;
    },
  };
}

/**
 * The waits between tries of refused appends, and the shutdown that ends them. While the server
 * runs a wait is what it asks for. A shutdown wakes every wait (one more try at once) and gives
 * the tries left one grace of accessAppendRetryDelaysMs's sum from then, over all tenants and
 * batches: each batch used to get the whole schedule again, so rows queued in several batches
 * held a shutdown on a full disk for 5.1 s per batch, past the shutdown bound.
 */
class RetryWaits {
  private graceEndMs: number | undefined;
  private readonly wakes = new Set<() => void>();

  /** Resolves true once `ms` have passed (or the shutdown woke it): try again; false: the shutdown's grace is over, give up. */
  wait(ms: number): Promise<boolean> {
    const leftMs = this.graceEndMs === undefined ? ms : Math.min(ms, this.graceEndMs - Date.now());
    if (leftMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakes.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(wake, leftMs);
      this.wakes.add(wake);
    });
  }

  end(): void {
    this.graceEndMs ??= Date.now() + accessAppendRetryDelaysMs.reduce((sum, ms) => sum + ms, 0);
    for (const wake of [...this.wakes]) wake();
  }
}

/**
 * An append whose write the disk refused (WriteNotApplied: ENOSPC, say; nothing was applied and
 * the store goes on) is tried again, waiting accessAppendRetryDelaysMs between tries and then its
 * last step, until it goes through: a disk full for minutes, until an operator frees space, loses
 * no row (DESIGN invariant 7: the requests served meanwhile, reads above all, are audited too).
 * The rows wait in memory, bounded by accessRowsWaitingMax. Only a shutdown ends the wait: past
 * its grace (RetryWaits) the rows are lost, loudly.
 */
async function appendRetrying(append: () => Promise<unknown>, retries: RetryWaits): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await append();
      return;
    } catch (error) {
      if (!(error instanceof WriteNotApplied) || !(await retries.wait(accessAppendRetryDelaysMs[attempt] ?? retryDelayMsLast))) throw error;
    }
  }
}

/**
 * Resolves after accessAppendDelayMs, or sooner when beforeWriteCall asks. The drain continues
 * in a microtask either way, so an early append is submitted in the write call's own tick.
 */
function waitForMoreRows(queue: TenantQueue): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => queue.appendNow?.(), accessAppendDelayMs);
    queue.appendNow = () => {
      clearTimeout(timer);
      queue.appendNow = undefined;
      resolve();
    };
  });
}

/** The oldest rows, up to the per-append bounds (at least one). */
function takeBatch(rows: AccessLogEntry[]): AccessLogEntry[] {
  let count = 0;
  let chars = 0;
  while (count < rows.length && count < accessRowsPerAppendMax) {
    chars += entryChars(rows[count]!);
    if (count > 0 && chars > accessCharsPerAppendMax) break;
    count++;
  }
  return rows.splice(0, count);
}

function entryChars(entry: AccessLogEntry): number {
  let chars = entry.subject.length + entry.action.length + entry.target.length + entry.outcome.length;
  for (const id of entry.object_ids ?? []) chars += id.length;
  return chars;
}

function objectIdsOf(args: unknown): string[] {
  if (!args || typeof args !== 'object') return [];
  const ids: string[] = [];
  for (const name of idArgumentNames) {
    const v = (args as Record<string, unknown>)[name];
    if (typeof v === 'string' && ids.length < accessObjectIdsMax) ids.push(clip(v));
  }
  return ids;
}

function clip(text: string): string {
  return text.length > fieldCharsMax ? text.slice(0, fieldCharsMax) : text;
}
