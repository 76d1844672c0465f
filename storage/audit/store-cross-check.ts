/**
 * The cross-check of a tenant's audit trail against its own store, the one copy Postgres cannot
 * rewrite. The chain in S3 and the staging in Postgres prove themselves whole only up to what
 * the control plane says (its `next_seq` and staged marks): someone who deletes the newest staged
 * events and lowers those marks, or events that never reached staging, leave a chain that proves
 * whole. The store's access-log rows (`source` access_log, `source_seq` = the row's seq) are
 * compared with the trail instead:
 *
 * - The store is compared with the events of the source's current generation (source-generation.ts):
 *   a store whose history restarted is staged anew under `access_log#2` and so on, and the
 *   generations before it hold the histories it no longer has.
 * - The trail's events of that generation are fed in chain order (S3 batches, then staging), their
 *   source seqs rising; the store's rows are read alongside in seq order, a page at a time (a merge).
 * - A row found with identical fields is checked; with other fields, `altered`.
 * - A row absent from the trail is `missing_event` when a later row is in the trail (staging
 *   takes rows in order), or when it is at or below the staged mark the control plane had before
 *   the trail was read. Above that mark it is pending (see `isPending`), else `missing_event` too.
 * - Rows older than the store's oldest (the access log keeps its newest accessLogRowsMax) cannot
 *   be checked: the summary says from which seq the check starts.
 * - A restart the stager has not seen yet leaves the store compared with the ended generation:
 *   its new rows are `altered` (or, past a closed store's end, `store_behind`) until it does.
 *
 * Memory: one page of rows (storeRowsPageMax) and the open store it is read from; problems are
 * ranges of seqs, at most storeCheckProblemsMax per store.
 */
import { isDeepStrictEqual } from 'node:util';
import type { JsonValue, Row } from '../schema.js';
import type { StoreApi } from '../store.js';
import { accessLogEnds, accessLogEvent, accessLogSource, accessLogTable } from '../control/audit-staging.js';
import { sourceGeneration } from '../control/source-generation.js';
import type { AuditProblem, AuditProblemKind } from './audit-problem.js';

/** Store rows read per step of the merge. */
export const storeRowsPageMax = 1_000;
/** Problems listed per store; past this they are counted in one last problem. */
export const storeCheckProblemsMax = 100;
/**
 * A live process stages its rows as it commits them (and writes its control-pending mark at a
 * working period's first change): a row younger than this in a store a process holds is in
 * flight, not late.
 */
export const stagingGraceMs = 60_000;

/** The access log a store holds, read in seq order. */
export interface HeldAccessLog {
  readonly rows: number;
  readonly oldestSeq: number | null;
  readonly newestSeq: number | null;
  page(fromSeq: number, limit: number): Promise<readonly Row[]>;
}

export async function heldAccessLogOf(store: StoreApi): Promise<HeldAccessLog> {
  const ends = await store.read((view) => {
    const table = view.table(accessLogTable);
    return { rows: table.size, ...accessLogEnds(table) };
  });
  return {
    ...ends,
    page: (fromSeq, limit) => store.read((view) => view.table(accessLogTable).page({ range: { from: [fromSeq] }, limit }).rows),
  };
}

/** The `code` of the error `TenantStores.open` throws for a known tenant whose store is gone from this machine. */
export const vanishedStoreCode = 'vanished_store';

/** The tenants' stores on this machine, as the verifier reads them. */
export interface TenantStores {
  /** Tenants with a store here, and known tenants whose store vanished, sorted. */
  readonly tenants: readonly string[];
  /** Throws an error with code `vanishedStoreCode` when the tenant's store has vanished. */
  open(tenant: string): Promise<OpenedTenantStore>;
}

export interface OpenedTenantStore {
  readonly accessLog: HeldAccessLog;
  /** The process that held the store when it was read, or null. */
  readonly openByPid: number | null;
  /** Whether a process holds the store now. */
  heldNow(): boolean;
  /** Whether the server's control-pending mark of the tenant is there now. */
  workWaiting(): Promise<boolean>;
  close(): Promise<void>;
}

/** What the store check says of one tenant. */
export interface StoreCheckSummary {
  readonly tenant: string;
  /** The generation of the access-log source the store was compared with (`access_log`, then `access_log#2`, ...). */
  readonly source: string;
  /** Rows the store's access log holds. */
  readonly rowsHeld: number;
  /** Held rows whose presence in the trail was proven or disproven (found, altered or missing). */
  readonly rowsChecked: number;
  /** The store's oldest row: rows before it aged out of the store and are not checked (null: no row). */
  readonly checkedFromSeq: number | null;
  readonly newestSeq: number | null;
  /** The control plane's staged mark of that generation, read before the trail. */
  readonly stagedThroughSeq: number;
  /** Rows above the staged mark that may legitimately wait (not problems). */
  readonly pendingRows: number;
  readonly pendingFromSeq?: number;
  /** Access-log events of the trail older than the store's oldest row: nothing left to compare them with. */
  readonly trailEventsAgedOut: number;
  /** The process holding the store while it was read (read as it was then), or null. */
  readonly openByPid: number | null;
  /** The server's control-pending mark of the tenant: its store holds work the control plane has not taken. */
  readonly workWaiting: boolean;
}

/** Where a trail event was read: a batch in the bucket, or staging. */
export interface TrailPlace {
  readonly key?: string;
  readonly batchSeq?: number;
}

/** What the check learns after the trail is read (see `isPending`). */
export interface StoreCheckEnd {
  /** The staged mark read again after the trail: it never goes down. */
  readonly stagedThroughSeqNow: number;
  readonly workWaiting: boolean;
  /** A process held the store when it was read or holds it now: the trail may run ahead of what was read. */
  readonly live: boolean;
  readonly nowMs: number;
}

type MissingWhy = 'later' | 'marked' | 'overdue';

interface TrailEvent {
  readonly source?: unknown;
  readonly sourceSeq?: unknown;
  readonly event?: JsonValue;
}

/**
 * The rule for a row above the staged mark and not in the trail: pending while the tenant is
 * marked control-pending (the server's durable note that its store holds work the control plane
 * has not taken; a stdio server with the embedded database writes it when it opens the store, as
 * its rows wait for `serve --http`), or while a process holds the store and the row is younger
 * than stagingGraceMs. Otherwise it should have been staged.
 */
export function isPending(row: Row, end: StoreCheckEnd): boolean {
  return end.workWaiting || (end.live && (row.at_ms as number) >= end.nowMs - stagingGraceMs);
}

export class StoreTrailCheck {
  private readonly problems: AuditProblem[] = [];
  private problemsUnlisted = 0;
  private page: readonly Row[] = [];
  private pageAt = 0;
  private nextFromSeq: number;
  private rowsRead = 0;
  private lastTrailSeq = 0;
  private checked = 0;
  private pending = 0;
  private pendingFromSeq: number | undefined;
  private agedOut = 0;
  private missingRun: { fromSeq: number; toSeq: number; why: MissingWhy } | undefined;
  private beyondStore: { fromSeq: number; toSeq: number; count: number } | undefined;

  constructor(
    readonly tenant: string,
    private readonly log: HeldAccessLog,
    /** The generation of the access-log source the store holds: events of the others pass by. */
    readonly source: string,
    /** Its staged mark read before the store and the trail: every row at or below it must be in the trail. */
    private readonly stagedThroughSeq: number,
    private readonly openByPid: number | null,
    private readonly onRows?: (done: number, total: number) => void,
  ) {
    if (sourceGeneration(source).family !== accessLogSource) throw new Error(`store check: ${source} is no generation of ${accessLogSource}`);
    this.nextFromSeq = log.oldestSeq ?? 1;
  }

  /** One event of the trail, in chain order; events of other sources (and generations) pass by. */
  async trailEvent(e: TrailEvent, at: TrailPlace): Promise<void> {
    if (e.source !== this.source || typeof e.sourceSeq !== 'number') return;
    const seq = e.sourceSeq;
    if (seq <= this.lastTrailSeq) {
      this.problem('altered', `${this.rowsLabel} seq ${seq} is in the trail again, after seq ${this.lastTrailSeq}${placeText(at)}`, at);
      return;
    }
    this.lastTrailSeq = seq;
    // Rows before it that the trail skipped: staging takes rows in order, so they are lost.
    for (let row = await this.peek(); row && (row.seq as number) < seq; row = await this.peek()) {
      this.take();
      this.noteMissing(row.seq as number, 'later');
    }
    const row = await this.peek();
    if (row && row.seq === seq) {
      this.take();
      this.checked++;
      if (!isDeepStrictEqual(accessLogEvent(row), e.event)) {
        this.problem('altered', `${this.rowsLabel} seq ${seq}${placeText(at)} is ${JSON.stringify(e.event)}, the store's row is ${JSON.stringify(accessLogEvent(row))}`, at);
      }
      return;
    }
    const oldest = this.log.oldestSeq;
    if (oldest !== null && seq < oldest) {
      this.agedOut++;
      return;
    }
    // The store holds no row of this seq.
    const run = this.beyondStore;
    this.beyondStore = run ? { fromSeq: run.fromSeq, toSeq: seq, count: run.count + 1 } : { fromSeq: seq, toSeq: seq, count: 1 };
  }

  /** After the whole trail: the rows left, judged against the staged mark and the pending rule. */
  async finish(end: StoreCheckEnd): Promise<{ summary: StoreCheckSummary; problems: AuditProblem[] }> {
    for (let row = await this.peek(); row; row = await this.peek()) {
      this.take();
      const seq = row.seq as number;
      if (seq <= this.stagedThroughSeq) this.noteMissing(seq, 'marked');
      else if (isPending(row, end)) {
        this.pending++;
        this.pendingFromSeq ??= seq;
      } else this.noteMissing(seq, 'overdue');
    }
    this.flushMissing();
    if (end.stagedThroughSeqNow < this.lastTrailSeq) {
      this.problem('mark_behind', `the control plane says ${this.source} is staged through seq ${end.stagedThroughSeqNow}, but S3 and staging hold seq ${this.lastTrailSeq}: the mark went backwards, and rows after it would be staged again or not at all`);
    }
    const beyond = this.beyondStore;
    // A live store's trail runs ahead of what was read of it; a closed store's must not.
    if (beyond && !end.live) {
      this.problem('store_behind', `the trail holds ${beyond.count} ${this.source} events (seq ${beyond.fromSeq}..${beyond.toSeq}) the store does not hold (its rows end at seq ${this.log.newestSeq ?? 'none'}): an older copy of the store (or a new one) is in its place, and no stager has staged it since: the next to stage this tenant opens the next generation of ${accessLogSource} for its rows (an audit_restart event), until then they are in no trail`);
    }
    if (this.problemsUnlisted > 0) {
      this.problems.push({ kind: this.problems[this.problems.length - 1]!.kind, tenant: this.tenant, detail: `and ${this.problemsUnlisted} more problems of this store not listed (storeCheckProblemsMax ${storeCheckProblemsMax})` });
    }
    return {
      summary: {
        tenant: this.tenant, source: this.source, rowsHeld: this.log.rows, rowsChecked: this.checked, checkedFromSeq: this.log.oldestSeq, newestSeq: this.log.newestSeq,
        stagedThroughSeq: this.stagedThroughSeq, pendingRows: this.pending, ...(this.pendingFromSeq !== undefined ? { pendingFromSeq: this.pendingFromSeq } : {}),
        trailEventsAgedOut: this.agedOut, openByPid: this.openByPid, workWaiting: end.workWaiting,
      },
      problems: this.problems,
    };
  }

  /** How problems name the store's rows: by their generation once there is more than one. */
  private get rowsLabel(): string {
    return this.source === accessLogSource ? 'access-log' : this.source;
  }

  private async peek(): Promise<Row | undefined> {
    if (this.pageAt < this.page.length) return this.page[this.pageAt];
    if (this.page.length > 0 && this.page.length < storeRowsPageMax) return undefined; // the last page was short: the end
    this.page = await this.log.page(this.nextFromSeq, storeRowsPageMax);
    this.pageAt = 0;
    const last = this.page[this.page.length - 1];
    if (!last) return undefined;
    this.nextFromSeq = (last.seq as number) + 1;
    return this.page[0];
  }

  private take(): void {
    this.pageAt++;
    this.rowsRead++;
    if (this.rowsRead % storeRowsPageMax === 0 || this.rowsRead === this.log.rows) this.onRows?.(this.rowsRead, this.log.rows);
  }

  /** Consecutive missing rows of one cause are one problem. */
  private noteMissing(seq: number, why: MissingWhy): void {
    this.checked++;
    const run = this.missingRun;
    if (run && run.why === why && run.toSeq === seq - 1) {
      run.toSeq = seq;
      return;
    }
    this.flushMissing();
    this.missingRun = { fromSeq: seq, toSeq: seq, why };
  }

  private flushMissing(): void {
    const run = this.missingRun;
    if (!run) return;
    this.missingRun = undefined;
    const label = this.rowsLabel;
    const rows = run.fromSeq === run.toSeq ? `${label} seq ${run.fromSeq}` : `${label} seq ${run.fromSeq}..${run.toSeq} (${run.toSeq - run.fromSeq + 1} events)`;
    const never = this.source === accessLogSource && this.stagedThroughSeq === 0 && this.lastTrailSeq === 0;
    const why = {
      later: 'is in neither S3 nor staging, though later rows are',
      marked: `is in neither S3 nor staging, though the control plane says ${this.source} is staged through seq ${this.stagedThroughSeq}`,
      overdue: never
        ? 'was never staged: the control plane and S3 know nothing of this tenant\'s access log, and no control-pending mark or live writer says it is waiting'
        : `is not staged (staged through seq ${this.stagedThroughSeq}), and no control-pending mark or live writer says it is waiting`,
    }[run.why];
    this.problem('missing_event', `${rows} of the store ${why}`);
  }

  private problem(kind: AuditProblemKind, detail: string, at: TrailPlace = {}): void {
    if (this.problems.length >= storeCheckProblemsMax) {
      this.problemsUnlisted++;
      return;
    }
    this.problems.push({ kind, tenant: this.tenant, ...(at.key ? { key: at.key } : {}), ...(at.batchSeq !== undefined ? { batchSeq: at.batchSeq } : {}), detail });
  }
}

function placeText(at: TrailPlace): string {
  return at.key ? ` (batch ${at.key})` : ' (staged)';
}
