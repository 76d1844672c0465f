/**
 * A tenant's sovereign store: in-memory tables, its own commitlog and snapshots, in one
 * directory. The rules it keeps (DESIGN §2):
 *  - durable before visible: callers, reads, subscribers and commit listeners see a
 *    transaction only after its frame is fdatasync'ed;
 *  - atomic reducers: a throw rolls back every change (tables, derived indexes, log);
 *  - deterministic recovery: newest verified snapshot + replay of the logged row changes;
 *  - honest failure: a failed fdatasync fails the store and cuts the unacknowledged frames off
 *    the log before their callers hear "not applied" (or "outcome unknown" when the cut fails);
 *    a failed write (ENOSPC) rolls back every unacknowledged transaction and the store keeps serving.
 */
import * as path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Caller, Invocation, RowChange, TxRecord } from './changes.js';
import { forEachPairInSlices } from './btree.js';
import { canonicalStateHash, canonicalStateHashInSlices, type TableState } from './canonical.js';
import { asSnapshotNotTaken, DamagedStore, MemoryError, namingStoreDir, StoreFailed, StoreFileNotWritten, TableNotInModule, WriteNotApplied, WriteOutcomeUnknown, type StoreFailureKind } from './errors.js';
import { LoopSlices, openSliceMsMax } from './io/event-loop.js';
import type { FileLayer } from './io/file-layer.js';
import { nodeFileLayer } from './io/node-file-layer.js';
import { Commitlog, type SyncOutcome, type WrittenFrames } from './log/commitlog.js';
import { inlineSyncTxMax } from './log/inline-sync.js';
import { frameBytesMax } from './log/frame.js';
import { FrameTxRecord } from './log/frame-tx-record.js';
import { argsAsStored, decodeInvocation, decodePayload, encodeStoredFrame, visitChangesAt, type EncodedChangesVisitor } from './log/payload.js';
import { LogRecovery } from './log/log-recovery.js';
import { checkpointFileName, encodeCheckpoint, readCheckpoint, type Checkpoint } from './log/checkpoint.js';
import { unsyncedBytesMax, unsyncedFramesMax, type ScannedLog } from './log/recovery.js';
import { segmentBytesMaxLimit, segmentHeaderBytes } from './log/segment.js';
import { retiredTableNames, type ReadView, type ReducerDef, type StoreModule, type TableReader } from './reducer.js';
import { assertSchema, type Row, type TableSchema, type Value } from './schema.js';
import { loadSnapshot, listSnapshots, SnapshotInvalid, verifySnapshotFiles, type LoadedSnapshot, type SnapshotRef } from './snapshot/reader.js';
import { applySnapshotRetention, removeUnfinishedSnapshots } from './snapshot/retention.js';
import { snapshotDirName, snapshotsDir, type SnapshotManifest } from './snapshot/manifest.js';
import { writeSnapshot } from './snapshot/writer.js';
import { takeStoreLock } from './store-lock.js';
import { readStoreHistory, newHistoryId, writeStoreHistory, type StoreHistory } from './history.js';
import { recordedHistory } from './history-evidence.js';
import { SubscriptionHub } from './subscriptions.js';
import { idempotencyKeyPattern, idempotencyKeysMax, idempotencyTable } from './idempotency.js';
import { Table } from './table.js';
import { sumRowBytes, type RowBytes } from './row-arena.js';
import { storeMemoryBytesEstimate } from './memory-estimate.js';
import { fromTableChanges, Transaction, type KeyChange, type NetTableChanges } from './transaction.js';

/** A structure derived from a table (e.g. a vector index), kept equal to it on every apply, undo, replay and load. */
export interface DerivedIndex {
  readonly table: string;
  onInsert(row: Row): void;
  onDelete(row: Row): void;
  clear(): void;
}

export interface StoreOptions {
  readonly dir: string;
  readonly module: StoreModule;
  readonly fileLayer?: FileLayer;
  readonly derived?: readonly DerivedIndex[];
  /** Take a snapshot after this many transactions since the last one (0 = never by count). */
  readonly snapshotEveryTx?: number;
  /** How often (at most) an acknowledgement checks that the store's files still have names (default filesCheckMsDefault; 0: every batch). */
  readonly filesCheckMs?: number;
  /** Take a snapshot when this much time passed since the last one and something changed (0 = never by time). */
  readonly snapshotEveryMs?: number;
  /** Clock for transaction timestamps (tests pass a fixed one). */
  readonly clock?: () => number;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** Longest piece of an open's work between turns of the event loop (io/event-loop.ts; tests pass 0: a turn at every check). */
  readonly openSliceMs?: number;
  /**
   * Failures the operator must hear of, as typed errors: a periodic snapshot not taken
   * (SnapshotNotTaken), a write the disk refused (WriteNotApplied, once per failed batch), the
   * store failing (StoreFailed), an observer that threw. Defaults to ignoring them.
   */
  readonly onBackgroundError?: (error: unknown) => void;
  /** Segment rotation size (tests use small ones). */
  readonly segmentBytesMax?: number;
  /** Where open checks the frames of sealed segments while replay applies them (log-recovery.ts): 'auto' uses a worker thread for large logs. */
  readonly replayCheckThread?: 'auto' | 'worker' | 'main';
  /** Bound on transactions applied but not yet durable; past it calls fail with `busy`. */
  readonly pendingTxMax?: number;
  /** Called after each durable batch (for metrics; the engine imports no metrics library). Must not throw. */
  readonly onBatch?: (info: BatchInfo) => void;
  /**
   * A batch of at most this many transactions fdatasyncs on the writer's thread when the store
   * and the thread are otherwise idle (log/inline-sync.ts; default inlineSyncTxMax). 0: always on
   * the thread pool (tests that hold a fdatasync in flight).
   */
  readonly syncInlineTxMax?: number;
  /**
   * Bound on the live row bytes of the store's tables (the tenant's size; default
   * tenantRowBytesMaxDefault). A transaction that grows them past it is refused; one that
   * shrinks them or keeps them level is not, and an open never refuses a store above it.
   */
  readonly liveRowBytesMax?: number;
}

/** One group-commit batch, as seen by `StoreOptions.onBatch`. */
export interface BatchInfo {
  readonly count: number;
  readonly bytes: number;
  readonly writeMs: number;
  readonly datasyncMs: number;
  /** The fdatasync ran on the writer's thread, not on the thread pool. */
  readonly syncedInline: boolean;
  /** Each transaction's commit latency: from its call to this acknowledgement (durable), in call order. */
  readonly commitMs: readonly number[];
}

/** One log segment's durable part, for a consistent copy (storage/backup/). */
export interface LogSource {
  readonly file: string;
  readonly firstOffset: number;
  readonly frames: number;
  /** Header plus whole frames, all fdatasync'ed. */
  readonly bytes: number;
}

export interface CallResult<R = unknown> {
  readonly offset: number;
  readonly result: R;
  /** True when an idempotency key matched an earlier call: nothing was written. */
  readonly replayed: boolean;
}

export interface CallOptions {
  readonly idempotencyKey?: string;
}

export type Unsubscribe = () => void;

export interface SubscribeOptions {
  /** The predicate implies row[column] === value: lets the hub index the subscription. */
  readonly equals?: { readonly column: string; readonly value: Value };
}

export interface StoreApi {
  readonly dir: string;
  /** Offset of the last applied transaction (-1 when empty). */
  readonly lastOffset: number;
  /** Offset of the last fdatasync'ed transaction. */
  readonly durableOffset: number;
  /** A failed fdatasync (or the files gone) failed the store: it refuses writes until reopened. */
  readonly failed: boolean;
  /** Why it failed (undefined while it has not). */
  readonly failureKind: StoreFailureKind | undefined;
  /** Which line of transactions the offsets belong to (history.ts): a restore of an older backup starts a new one. */
  readonly history: StoreHistory;
  /** What the open found and did (the snapshot it loaded, a torn tail cut, a history given or put back). */
  readonly report: OpenReport;
  call<R = unknown>(reducer: string, args: unknown, caller: Caller, options?: CallOptions): Promise<CallResult<R>>;
  /** Run fn on the current state; its result, or the error it throws, is released only once that state is durable. */
  read<T>(fn: (view: ReadView) => T): Promise<T>;
  /** One logged transaction, or undefined when the log no longer holds it. */
  readTx(offset: number): Promise<TxRecord | undefined>;
  /** Every durable batch, in offset order, in the same tick as the callers' acknowledgements. */
  onCommit(listener: (txs: readonly TxRecord[]) => void): Unsubscribe;
  /** Row events of one table matching predicate, per durable transaction. */
  subscribe(table: string, predicate: (row: Row) => boolean, listener: (offset: number, changes: readonly RowChange[]) => void, options?: SubscribeOptions): Unsubscribe;
  /** Write a snapshot of the state now; a failed write rejects with SnapshotNotTaken (the store goes on). */
  snapshot(): Promise<{ offset: number; stateHash: string }>;
  stateHash(): string;
  /** What the tables' rows cost in arena bytes. */
  rowBytes(): RowBytes;
  /** What the store holds in memory, estimated (memory-estimate.ts). */
  memoryBytesEstimate(): number;
  close(): Promise<void>;
}

export const pendingTxMaxDefault = 50_000;
/**
 * A tenant's live row bytes (encoded rows, row-arena.ts) stop growing here: 1 GiB. Resident
 * memory is about twice the row bytes once the trees and indexes are counted
 * (storeMemoryBytesEstimate), so a tenant at the limit holds ~2-3 GB open: several fit a
 * server of usual size, and a table's arena addresses at most arenaChunksMax x arenaChunkBytes
 * (1 GiB) before rows spill into JS objects that cost several times their bytes.
 */
export const tenantRowBytesMaxDefault = 1024 * 1024 * 1024;
/**
 * An acknowledgement checks at most this often that the active segment still has a name: a store
 * whose directory was deleted under it fails (loudly, refusing writes) within this long, instead
 * of acknowledging writes into files nothing can reach again. (At 100 ms, four alternating pairs
 * of full engine benches had the 64-caller p99 higher with the check in 3 of 4, within the
 * host's noise; once a second costs nothing measurable either way.)
 */
export const filesCheckMsDefault = 1_000;
/** A call's options when it gives none: one shared object, not a new `{}` per call. */
const noCallOptions: CallOptions = Object.freeze({});

/** One group-commit batch holds at most this many frames / bytes. */
export const batchTxMax = 4096;
export const batchBytesMax = 8 * 1024 * 1024;
/** Batches written at once: batch N+1 is written and its fdatasync started while batch N's runs. */
export const batchesInFlightMax = 2;
/**
 * With the pipeline empty, a batch is cut in the middle of a tick once this many transactions
 * wait: callers acknowledged together compute their next transactions in one long tick, and the
 * disk should sync the first of them while the rest are computed. Fewer wait for the end of the tick.
 */
export const batchCutTxMin = 32;
/**
 * With one batch in flight, the next is cut mid-tick once as many wait as that batch holds (never
 * fewer than this): so N concurrent callers settle into two batches of about N/2, one syncing while
 * the other is computed, whatever N is. A fixed cut fits one N only: at 32, 64 callers split evenly,
 * but 100 went 32 + 32 + 36 and the last group waited a whole fdatasync more (alternated pairs,
 * 2026-11-30: commit p99 at 100 callers 2.83 against 3.26 ms, at 256 callers 0.4-1.3 ms lower and
 * 4-20 % more commits/s; at 16 and 64 callers no difference, as expected).
 */
export const batchCutTxFloor = 8;
// Recovery cuts a bad tail only within what a crash can leave unsynced (log/recovery.ts): the batches in flight must fit in it.
if (batchesInFlightMax * batchTxMax > unsyncedFramesMax || batchesInFlightMax * Math.max(batchBytesMax, frameBytesMax) > unsyncedBytesMax) {
  throw new Error('group-commit limits exceed what recovery counts as unsynced');
}
/** Snapshots kept (and the log since the older one), so a damaged newest falls back. */
export const snapshotsKept = 2;

/** Each pending transaction's time from its call until now (its acknowledgement). */
function commitLatenciesMs(batch: readonly Pending[]): number[] {
  const nowMs = performance.now();
  return batch.map((p) => nowMs - p.calledMs);
}

interface Pending {
  readonly offset: number;
  /** performance.now() when the call began: its commit latency is measured from here. */
  readonly calledMs: number;
  readonly frame: Buffer;
  /**
   * The transaction's row changes, kept only when the store had subscribers at the call (they
   * want them at the acknowledgement); otherwise decoded from the frame if ever needed (netOf).
   * Why: everything a pending transaction holds survives a young-generation collection, and the
   * rows and the records around them were most of it (~1.8 KB per transaction at 64 callers;
   * scavenge pauses grow with what survives them, and they were the commit latency tail).
   */
  readonly net: NetTableChanges[] | undefined;
  readonly result: unknown;
  readonly resolve: (r: CallResult) => void;
  readonly reject: (e: unknown) => void;
}

/** A batch written to the log; its fdatasync (started right after the write) may still run. */
interface InFlightBatch {
  readonly batch: Pending[];
  readonly bytes: number;
  readonly written: WrittenFrames;
  readonly syncedInline: boolean;
  /** Set when its fdatasync settles: syncs may settle in any order, batches are acknowledged in order. */
  synced: SyncOutcome | undefined;
}

interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
  /** A failed write rolled `offset` back: answer again on the rolled-back state (when absent, rejected). */
  readonly rolledBack?: () => void;
}

export interface OpenReport {
  readonly snapshotOffset: number;
  readonly snapshotsSkipped: readonly string[];
  readonly replayedFrames: number;
  readonly torn?: ScannedLog['torn'];
  readonly checkpointVerified: boolean;
  /** This open gave the store its history id (history.ts): a new store ('created'), or one from before history ids ('adopted'). */
  readonly historyWritten?: 'created' | 'adopted';
  /** history.json was missing and this open put it back from the file that recorded it (history-evidence.ts). */
  readonly historyRecoveredFrom?: string;
  /** Turns of the event loop the open's index builds, replay and state hash gave (LoopSlices). */
  readonly loopTurns: number;
}


/** Where a log ends: its last whole offset, and the file and byte there (with why, when a bad frame ends it). */
export interface LogEnd {
  readonly lastOffset: number;
  readonly end: { readonly file: string; readonly position: number; readonly torn?: string };
}

/**
 * Transactions acknowledged past the log's end, as the damage it is (undefined: none). The
 * evidence: a clean close's checkpoint, or a snapshot (written only once its offset was durable),
 * past the last whole offset. The open refuses on it; so does a backup read from the files of a
 * store no process holds (backup/take-backup.ts), which would otherwise copy the shorter log.
 */
export function lostAcknowledged(log: LogEnd, checkpointOffset: number | undefined, snapshots: readonly { readonly dir: string; readonly offset: number }[]): DamagedStore | undefined {
  const past = snapshots.find((s) => s.offset > log.lastOffset);
  const [offset, evidence] = checkpointOffset !== undefined && checkpointOffset > log.lastOffset
    ? [checkpointOffset, `the store was closed cleanly at offset ${checkpointOffset} (${checkpointFileName})`]
    : past ? [past.offset, `snapshot ${path.basename(past.dir)} was taken at offset ${past.offset}, once it was durable`] : [undefined, ''];
  if (offset === undefined) return undefined;
  const { end, lastOffset } = log;
  const why = end.torn ? `the last segment has a bad frame here (${end.torn})` : 'the log ends here';
  return new DamagedStore(end.file, end.position, `${why}, at offset ${lastOffset}, but ${evidence}: transactions ${lastOffset + 1}..${offset} were acknowledged and are not in the log`);
}

/** The tables of a store of `module`: the module's own, its retired ones and the idempotency table (a snapshot holds them all). */
export function storeSchemas(module: StoreModule): Map<string, TableSchema> {
  const schemas = new Map<string, TableSchema>();
  for (const schema of [...module.tables, ...(module.retiredTables ?? []), idempotencyTable]) {
    if (schemas.has(schema.name)) throw new Error(`table ${schema.name} declared twice (a retired table is not declared again)`);
    assertSchema(schema);
    schemas.set(schema.name, schema);
  }
  return schemas;
}

export class Store implements StoreApi {
  /** Every table the store holds, retired ones too (StoreModule.retiredTables): recovery, snapshots, the hash. */
  private readonly tables = new Map<string, Table>();
  /** The tables reducers, reads and subscriptions reach: all but the retired ones. */
  private readonly liveTables = new Map<string, Table>();
  private readonly schemas = new Map<string, TableSchema>();
  private readonly reducers = new Map<string, ReducerDef>();
  private readonly derivedByTable = new Map<string, DerivedIndex[]>();
  private readonly retiredTableNames: ReadonlySet<string>;
  private readonly hub = new SubscriptionHub();
  private readonly commitListeners = new Set<(txs: readonly TxRecord[]) => void>();
  /** Snapshot directories the open found invalid and skipped: retention never counts them as kept. */
  private readonly damagedSnapshotDirs = new Set<string>();
  private readonly queue: Pending[] = [];
  private waiters: Waiter[] = [];
  private log!: Commitlog;
  private applied = -1;
  private durable = -1;
  /** Batches written whose acknowledgement waits for their fdatasync, oldest first (at most batchesInFlightMax). */
  private readonly inFlight: InFlightBatch[] = [];
  /** Queue entries written so far: exactly the in-flight batches, in order. */
  private writtenTx = 0;
  /** fdatasyncs started and not yet settled (also after a failure: close waits for them before closing the file). */
  private syncsRunning = 0;
  /** A write failed: nothing more is written; once the batches in flight are acknowledged the rest rolls back. */
  private writeFailure: { readonly error: unknown } | undefined;
  private cutScheduled = false;
  /** An inline batch is being acknowledged: batches cut meanwhile (by its listeners) sync on the pool. */
  private acknowledgingInline = false;
  private rotating = false;
  /** close() waits here until nothing is queued, syncing or rotating. */
  private idleWaiters: (() => void)[] = [];
  private failure: StoreFailed | undefined;
  private closing = false;
  private compactionScheduled = false;
  private snapshotInFlight: Promise<{ offset: number; stateHash: string }> | undefined;
  private txSinceSnapshot = 0;
  private lastSnapshotOffset = -1;
  /** The proven state hash at lastSnapshotOffset (undefined: none known), so close need not rehash. */
  private lastSnapshotHash: string | undefined;
  private snapshotTimer: NodeJS.Timeout | undefined;
  private readonly fl: FileLayer;
  /** When the active segment's name was last looked at (filesDeleted). */
  private filesCheckedMs = -Infinity;
  private readonly filesCheckMs: number;
  /** Releases the directory's LOCK (store-lock.ts); set by the open. */
  private releaseLock: () => Promise<void> = async () => undefined;
  private historyRecord!: StoreHistory;
  private readonly clock: () => number;
  /**
   * The newest transaction timestamp (the last frame's, after the open): a clock stepped back
   * (NTP, a restored VM) stamps later transactions with it until the clock passes it again, so
   * timestamps never run backwards in offset order (no negative durations, no newest-first
   * list out of order).
   */
  private timestampFloorMs = -Infinity;
  private readonly pendingTxMax: number;
  private readonly syncInlineTxMax: number;
  private readonly liveRowBytesMax: number;
  report!: OpenReport;

  private constructor(private readonly options: StoreOptions) {
    this.fl = options.fileLayer ?? nodeFileLayer;
    this.clock = options.clock ?? Date.now;
    this.pendingTxMax = options.pendingTxMax ?? pendingTxMaxDefault;
    this.filesCheckMs = options.filesCheckMs ?? filesCheckMsDefault;
    this.syncInlineTxMax = options.syncInlineTxMax ?? inlineSyncTxMax;
    this.liveRowBytesMax = options.liveRowBytesMax ?? tenantRowBytesMaxDefault;
    if (!(Number.isSafeInteger(this.liveRowBytesMax) && this.liveRowBytesMax >= 0)) {
      throw new MemoryError('invalid_argument', `liveRowBytesMax must be a non-negative integer, got ${this.liveRowBytesMax}`);
    }
    const { segmentBytesMax } = options;
    if (segmentBytesMax !== undefined && !(Number.isSafeInteger(segmentBytesMax) && segmentBytesMax > segmentHeaderBytes && segmentBytesMax <= segmentBytesMaxLimit)) {
      throw new MemoryError('invalid_argument', `segmentBytesMax must be an integer from ${segmentHeaderBytes + 1} to ${segmentBytesMaxLimit} (segmentBytesMaxLimit), got ${segmentBytesMax}`);
    }
    for (const [name, schema] of storeSchemas(options.module)) this.schemas.set(name, schema);
    for (const r of options.module.reducers) {
      if (this.reducers.has(r.name)) throw new Error(`reducer ${r.name} declared twice`);
      this.reducers.set(r.name, r);
    }
    this.retiredTableNames = new Set(retiredTableNames(options.module));
    for (const d of options.derived ?? []) {
      if (!this.schemas.has(d.table) || this.retiredTableNames.has(d.table)) throw new Error(`derived index on unknown table ${d.table}`);
      const list = this.derivedByTable.get(d.table) ?? [];
      list.push(d);
      this.derivedByTable.set(d.table, list);
    }
  }

  get dir(): string {
    return this.options.dir;
  }
  get lastOffset(): number {
    return this.applied;
  }
  get durableOffset(): number {
    return this.durable;
  }
  get history(): StoreHistory {
    return this.historyRecord;
  }
  get failed(): boolean {
    return this.failure !== undefined;
  }
  /** Why the store failed (undefined while it has not). */
  get failureKind(): StoreFailureKind | undefined {
    return this.failure?.kind;
  }
  get pendingCount(): number {
    return this.queue.length;
  }
  get subscriptionCount(): number {
    return this.hub.size;
  }

  private get logDir(): string {
    return path.join(this.dir, 'log');
  }

  static async open(options: StoreOptions): Promise<Store> {
    const store = new Store(options);
    try {
      await store.recover();
    } catch (error) {
      // What finds damage knows a file; the open knows the store, so its repair hint is the command to run.
      throw namingStoreDir(error, options.dir);
    }
    return store;
  }

  // ---------------------------------------------------------------- recovery

  private async recover(): Promise<void> {
    const fl = this.fl;
    await fl.mkdirp(this.logDir);
    this.releaseLock = await takeStoreLock(this.dir, fl, () => removeUnfinishedSnapshots(this.dir, fl));
    let recovery: LogRecovery | undefined;
    try {
      // Read first: a damaged history file refuses the open before anything is cut or replayed.
      const history = await readStoreHistory(this.dir, fl);
      const progress = this.options.onProgress;
      // The last segment first: its end decides which snapshots are usable; the rest is checked as it is replayed.
      // Nothing can see the tables while the open gives the loop turns: the store is handed out once open resolves.
      const slices = new LoopSlices(this.options.openSliceMs ?? openSliceMsMax);
      recovery = await LogRecovery.begin(this.logDir, fl, { checkThread: this.options.replayCheckThread ?? 'auto', slices, onProgress: (d, t) => progress?.('scan', d, t) });
      // Nothing is cut before these checks: a log that ends short of what was acknowledged is damage, not a torn write.
      const checkpoint = await this.readCheckpoint();
      const lost = lostAcknowledged(recovery, checkpoint?.offset, []);
      if (lost) throw lost;
      const { loaded, skipped } = await this.loadNewestSnapshot(recovery, slices);
      const snapshotOffset = loaded?.manifest.offset ?? -1;
      for (const schema of this.schemas.values()) {
        const rows = loaded?.tables.get(schema.name);
        const arena = loaded?.arenas.get(schema.name);
        const table = rows && arena ? await Table.load(schema, rows, arena, slices) : new Table(schema);
        this.tables.set(schema.name, table);
        if (!this.retiredTableNames.has(schema.name)) this.liveTables.set(schema.name, table);
      }
      for (const [name, list] of this.derivedByTable) {
        const table = this.tables.get(name)!;
        for (const d of list) {
          d.clear();
          await forEachPairInSlices(table.rows, slices, (_key, stored) => d.onInsert(table.rowOfStored(stored)));
        }
      }
      const { scanned, replayedFrames } = await this.replay(recovery, snapshotOffset);
      this.log = await Commitlog.open(this.logDir, fl, scanned, snapshotOffset + 1, this.options.segmentBytesMax);
      this.applied = this.durable = Math.max(scanned.lastOffset, snapshotOffset);
      if (this.log.nextOffset !== this.applied + 1) {
        throw new DamagedStore(this.logDir, 0, `log ends at ${this.log.nextOffset - 1} but state is at ${this.applied}`);
      }
      this.timestampFloorMs = await this.newestTimestampMs(loaded?.manifest.createdAtMs);
      // With nothing replayed the state IS the loaded snapshot, whose file hash was just proven.
      const provenHash = loaded && replayedFrames === 0 ? loaded.manifest.stateHash : undefined;
      // Before the checkpoint goes (verifyCheckpoint): it may be the one file that records the history.
      const recorded = history ? undefined : await recordedHistory(this.dir, fl, checkpoint);
      if (recorded) await writeStoreHistory(this.dir, recorded.history, fl);
      const checkpointVerified = await this.verifyCheckpoint(checkpoint, provenHash, slices);
      this.lastSnapshotOffset = snapshotOffset;
      this.lastSnapshotHash = loaded?.manifest.stateHash;
      const written = history ?? recorded ? undefined : await this.writeFirstHistory(snapshotOffset);
      this.historyRecord = history ?? recorded?.history ?? written!;
      this.report = {
        snapshotOffset, snapshotsSkipped: skipped, replayedFrames, checkpointVerified, loopTurns: slices.turns,
        ...(scanned.torn ? { torn: scanned.torn } : {}), ...(written ? { historyWritten: written.origin as 'created' | 'adopted' } : {}),
        ...(recorded ? { historyRecoveredFrom: recorded.file } : {}),
      };
      const everyMs = this.options.snapshotEveryMs ?? 0;
      if (everyMs > 0) {
        this.snapshotTimer = setInterval(() => {
          if (this.applied > this.lastSnapshotOffset) this.backgroundSnapshot();
        }, everyMs);
        this.snapshotTimer.unref();
      }
    } catch (error) {
      await recovery?.close(); // its worker, when the open failed before replay ended
      await this.log?.close().catch(() => undefined);
      await this.releaseLock();
      throw error;
    }
  }

  /**
   * A store without a history file, and no snapshot or checkpoint recording one, gets one now,
   * before any call can commit: so a store with transactions and none was written by a version
   * before history ids (or lost the file before its first snapshot or clean close), and is given a
   * new random id from here on ('adopted'; history.ts says why not a derived one).
   */
  private async writeFirstHistory(snapshotOffset: number): Promise<StoreHistory> {
    const empty = this.applied < 0 && snapshotOffset < 0 && (await listSnapshots(this.dir, this.fl)).length === 0;
    const history: StoreHistory = {
      id: newHistoryId(), origin: empty ? 'created' : 'adopted', createdAtMs: this.clock(), startOffset: this.applied + 1, ancestors: [],
    };
    await writeStoreHistory(this.dir, history, this.fl);
    return history;
  }

  private async loadNewestSnapshot(recovery: LogRecovery, slices: LoopSlices): Promise<{ loaded?: LoadedSnapshot; skipped: string[] }> {
    const { logFirst, logExists } = recovery;
    const skipped: string[] = [];
    const refs: SnapshotRef[] = await listSnapshots(this.dir, this.fl);
    for (const ref of refs) {
      // A snapshot is written only once its offset is durable (snapshot/writer.ts): the log held
      // every frame up to it. A log that ends before it lost acknowledged transactions.
      const lost = logExists ? lostAcknowledged(recovery, undefined, [ref]) : undefined;
      if (lost) throw lost;
      if (logExists && ref.offset + 1 < logFirst) {
        skipped.push(`${ref.dir}: the log no longer reaches back to offset ${ref.offset + 1}`);
        continue;
      }
      try {
        const loaded = await loadSnapshot(ref, this.fl, this.schemas, (d, t) => this.options.onProgress?.('snapshot', d, t), slices);
        return { loaded, skipped };
      } catch (error) {
        if (!(error instanceof SnapshotInvalid)) throw error;
        skipped.push(error.message);
        this.damagedSnapshotDirs.add(ref.dir); // never one of the kept: the log below it must stay
      }
    }
    if (logExists && logFirst > 0) {
      throw new DamagedStore(path.join(this.dir, 'snapshots'), 0,
        `no valid snapshot, and the log starts at offset ${logFirst}: ${skipped.join('; ') || 'no snapshots'}`,
        'restore the store from a backup (`ioboxx-memory restore`), or put a valid snapshot back in snapshots/');
    }
    return { skipped };
  }

  /**
   * The timestamp of the last transaction, read from its frame; when the log holds none past the
   * snapshot (a log that starts after it), the snapshot's own time, which came after it.
   */
  private async newestTimestampMs(snapshotCreatedAtMs: number | undefined): Promise<number> {
    const payload = this.applied >= 0 ? await this.log.readPayload(this.applied) : undefined;
    if (payload !== undefined) return decodeInvocation(this.applied, payload).timestampMs;
    return snapshotCreatedAtMs ?? -Infinity;
  }

  /** Apply the logged row changes after the snapshot; reducers are not re-run. Every segment is checked on the way (log-recovery.ts). */
  private async replay(recovery: LogRecovery, afterOffset: number): Promise<{ scanned: ScannedLog; replayedFrames: number }> {
    const total = Math.max(0, recovery.lastOffset - afterOffset);
    let done = 0;
    const at = { offset: -1, file: '', position: 0 };
    const applier = this.applyChanges(at);
    const scanned = await recovery.replay(afterOffset, (buf, position, offset, file) => {
      const length = buf.readUInt32LE(position + 8);
      at.offset = offset;
      at.file = file;
      at.position = position;
      visitChangesAt(offset, buf, position + 12, position + 12 + length, applier);
      if (++done % 10_000 === 0) this.options.onProgress?.('replay', done, total);
    });
    this.options.onProgress?.('replay', done, total);
    return { scanned, replayedFrames: done };
  }

  /**
   * Applies a frame's changes as replay walks them (visitChangesAt), rows kept encoded: a row
   * is decoded only for the derived indexes of its table (secondary indexes decode what they
   * need in Table). `at` names the frame being applied, for the damage report.
   */
  private applyChanges(at: { offset: number; file: string; position: number }): EncodedChangesVisitor {
    let table: Table | undefined;
    let derived: DerivedIndex[] | undefined;
    const damaged = (what: string) => new DamagedStore(at.file, at.position, `replay of offset ${at.offset}: ${what} of ${table!.schema.name} ${what === 'deleted row' ? 'is not in the state' : 'already exists'}`);
    return {
      table: (name) => {
        table = this.tables.get(name);
        if (!table) throw new TableNotInModule(name, `the frame of offset ${at.offset} in ${at.file}`);
        derived = this.derivedByTable.get(name);
      },
      deleted: (buf, start, end) => {
        const key = table!.keyOfEncoded(buf, start, end);
        if (derived) {
          const old = table!.remove(key);
          if (!old) throw damaged('deleted row');
          for (const d of derived) d.onDelete(old);
        } else if (!table!.removeKey(key)) {
          throw damaged('deleted row');
        }
      },
      inserted: (buf, start, end) => {
        const row = derived ? table!.decodeAt(buf, start, end) : undefined;
        if (!table!.putNewEncoded(buf, start, end, row)) throw damaged('inserted row');
        if (derived) for (const d of derived) d.onInsert(row!);
      },
    };
  }

  /** The checkpoint a clean close left; one that does not parse counts as none (and is removed, so it is not read again). */
  private async readCheckpoint(): Promise<Checkpoint | undefined> {
    const checkpoint = await readCheckpoint(this.logDir, this.fl);
    if (checkpoint !== 'unreadable') return checkpoint;
    await this.removeCheckpoint();
    return undefined;
  }

  /**
   * The recovered state must hash to what the clean close recorded. A mismatch refuses the open
   * and keeps the checkpoint, so every later open refuses too until an operator decides. The
   * checkpoint goes (durably: a later crash must not bring it back) once it matched or is stale.
   */
  private async verifyCheckpoint(checkpoint: Checkpoint | undefined, provenHash: string | undefined, slices: LoopSlices): Promise<boolean> {
    if (!checkpoint) return false;
    if (checkpoint.offset > this.applied) throw new Error(`checkpoint at ${checkpoint.offset} is past the recovered state ${this.applied}`); // refused before replay
    if (checkpoint.offset === this.applied) {
      const hash = provenHash ?? (await canonicalStateHashInSlices(this.tableStates(false), slices));
      if (hash !== checkpoint.stateHash) {
        const file = path.join(this.logDir, checkpointFileName);
        throw new DamagedStore(file, 0, `state hash after recovery ${hash} differs from the hash ${checkpoint.stateHash} recorded at offset ${checkpoint.offset}`,
          `restore the store from a backup; or, to keep the recovered state, move ${file} aside`);
      }
    }
    await this.removeCheckpoint();
    return checkpoint.offset === this.applied;
  }

  private async removeCheckpoint(): Promise<void> {
    await this.fl.unlink(path.join(this.logDir, checkpointFileName));
    await this.fl.fsyncDir(this.logDir);
  }

  // ---------------------------------------------------------------- writes

  call<R = unknown>(reducerName: string, args: unknown, caller: Caller, options: CallOptions = noCallOptions): Promise<CallResult<R>> {
    try {
      return this.callSync(reducerName, args, caller, options) as Promise<CallResult<R>>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private callSync(reducerName: string, rawArgs: unknown, caller: Caller, options: CallOptions): Promise<CallResult> {
    if (this.failure) throw this.failure;
    if (this.closing) throw new MemoryError('unavailable', 'store is closing', 'retry shortly');
    if (this.queue.length >= this.pendingTxMax) {
      throw new MemoryError('busy', `store has ${this.queue.length} transactions waiting for the disk`, 'retry after a short delay');
    }
    const reducer = this.reducers.get(reducerName);
    if (!reducer) throw new MemoryError('invalid_argument', `unknown reducer ${reducerName}`);
    const calledMs = performance.now();
    const parsed = reducer.args.safeParse(rawArgs);
    if (!parsed.success) {
      const detail = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(args)'}: ${i.message}`).join('; ');
      throw new MemoryError('invalid_argument', `invalid arguments for ${reducerName}: ${detail}`);
    }
    const key = options.idempotencyKey;
    if (key !== undefined) {
      if (!idempotencyKeyPattern.test(key)) throw new MemoryError('invalid_argument', `idempotency key must match ${idempotencyKeyPattern}`);
      const seen = this.tables.get(idempotencyTable.name)!.get([key]);
      if (seen) {
        if (seen.reducer !== reducerName) {
          throw new MemoryError('invalid_argument', `idempotency key ${key} was used for ${String(seen.reducer)}, not ${reducerName}`);
        }
        const offset = seen.offset as number;
        // Rolled back, the first call never happened: this one runs as itself.
        return this.answerWhenDurable(offset, async () => {
          await this.refuseOtherArguments(offset, parsed.data);
          return { offset, result: seen.result, replayed: true };
        }, () => this.call(reducerName, rawArgs, caller, options));
      }
    }
    const offset = this.applied + 1;
    const timestampMs = (this.timestampFloorMs = Math.max(this.clock(), this.timestampFloorMs));
    const tx = new Transaction(this.liveTables, caller, timestampMs, offset);
    let result: unknown;
    try {
      result = reducer.run(tx, parsed.data);
      if (result instanceof Promise) throw new Error(`reducer ${reducerName} returned a promise: reducers are synchronous`);
      if (key !== undefined) recordIdempotencyKey(tx, key, reducerName, offset, result, timestampMs);
      if (reducer.passesRowLimit !== true) this.refuseGrowthPastLimit(tx);
    } catch (error) {
      return this.refuseCall(tx, error, () => this.call(reducerName, rawArgs, caller, options));
    }
    const net = tx.netChanges();
    const invocation: Invocation = key === undefined
      ? { reducer: reducerName, args: parsed.data, caller, timestampMs }
      : { reducer: reducerName, args: parsed.data, caller, timestampMs, idempotencyKey: key };
    let frame: Buffer;
    try {
      // The changes part copies the bytes the tables just stored (no second encoding of a row).
      frame = encodeStoredFrame(offset, net, this.tables, invocation);
    } catch (error) {
      return this.refuseCall(tx, error, () => this.call(reducerName, rawArgs, caller, options));
    }
    try {
      this.applyDerived(net, 'forward');
    } catch (error) {
      // A derived index refused a row: undo what it took, then the transaction (atomic).
      try {
        this.applyDerived(net, 'undo');
      } catch {
        // Already inconsistent in the index: the table stays the source of truth.
      }
      return this.refuseCall(tx, error, () => this.call(reducerName, rawArgs, caller, options));
    }
    this.applied = offset;
    return new Promise<CallResult>((resolve, reject) => {
      this.queue.push({ offset, calledMs, frame, net: this.hub.size > 0 ? net : undefined, result, resolve, reject });
      this.kickWriter();
    });
  }

  /**
   * Refuse a transaction that leaves the live row bytes above liveRowBytesMax and larger than
   * before it: growth past the limit. Shrinking or level ones pass, so a tenant above a lowered
   * limit can still delete and update. Counters only (the touched tables', then every table's).
   */
  private refuseGrowthPastLimit(tx: Transaction): void {
    const growth = tx.liveRowBytesGrowth();
    if (growth <= 0) return;
    const live = this.liveRowBytes();
    if (live <= this.liveRowBytesMax) return;
    throw new MemoryError(
      'limit_exceeded',
      `this transaction would grow the tenant's rows from ${live - growth} to ${live} bytes, over the tenant row bytes limit of ${this.liveRowBytesMax}`,
      'delete data the tenant no longer needs, or raise the limit (IOBOXX_TENANT_ROW_BYTES_MAX)',
    );
  }

  private applyDerived(net: readonly { table: string; keyChanges: readonly KeyChange[] }[], direction: 'forward' | 'undo'): void {
    for (const { table, keyChanges } of net) {
      const derived = this.derivedByTable.get(table);
      if (!derived) continue;
      for (const d of derived) {
        for (const c of keyChanges) {
          const [out, into] = direction === 'forward' ? [c.old, c.row] : [c.row, c.old];
          if (out) d.onDelete(out);
          if (into) d.onInsert(into);
        }
      }
    }
  }

  /** A transaction was queued: write it now if a batch is due and the pipeline has room, else at the end of this tick (so the tick's calls share a batch). */
  private kickWriter(): void {
    if (this.inFlight.length < batchesInFlightMax && this.queue.length - this.writtenTx >= this.batchCutTx()) this.cutBatches();
    else if (!this.cutScheduled) {
      this.cutScheduled = true;
      setImmediate(this.cutAtTickEnd);
    }
  }

  /** How many waiting transactions make a batch due mid-tick (batchCutTxMin, batchCutTxFloor). */
  private batchCutTx(): number {
    const inFlight = this.inFlight[this.inFlight.length - 1];
    return inFlight === undefined ? batchCutTxMin : Math.max(batchCutTxFloor, inFlight.batch.length);
  }

  private readonly cutAtTickEnd = (): void => {
    this.cutScheduled = false;
    this.cutBatches();
  };

  /**
   * The group-commit writer, step 1: write the unwritten transactions in batches (one writev
   * each, into the page cache, on this thread) while the pipeline has room, and start each
   * batch's fdatasync right after its write. So batch N+1 is written and syncing while batch N's
   * fdatasync runs, and the disk is not idle while acknowledged callers compute their next
   * transactions. A failed write (ENOSPC) stops writing: the batches in flight are still
   * acknowledged, then everything after them rolls back. A small batch alone in an idle store
   * syncs inline instead and is acknowledged before this returns (syncInlineDue).
   */
  private cutBatches(): void {
    while (!this.failure && !this.writeFailure && !this.rotating && this.inFlight.length < batchesInFlightMax && this.writtenTx < this.queue.length) {
      if (this.log.wantsRotation) {
        // Seal a segment only once all of it is durable: the last acknowledgement cuts again.
        if (this.inFlight.length === 0) void this.rotateThenCut();
        return;
      }
      const { count, bytes } = this.nextBatchSize(this.writtenTx);
      const batch = this.queue.slice(this.writtenTx, this.writtenTx + count);
      if (batch[0]!.offset !== this.log.nextWriteOffset) {
        this.fail(`writer: batch starts at ${batch[0]!.offset}, log expects ${this.log.nextWriteOffset}`, 'writer_out_of_step');
        return;
      }
      const frames = new Array<Buffer>(count);
      for (let i = 0; i < count; i++) frames[i] = batch[i]!.frame;
      let written: WrittenFrames;
      try {
        written = this.log.write(frames, count);
      } catch (error) {
        this.writeFailure = { error };
        if (this.inFlight.length === 0) this.settleWriteFailure();
        return;
      }
      this.writtenTx += count;
      const syncedInline = this.inFlight.length === 0 && this.syncInlineDue(count);
      const entry: InFlightBatch = { batch, bytes, written, syncedInline, synced: undefined };
      this.inFlight.push(entry);
      if (syncedInline) {
        // Alone in the pipeline: fdatasync here and acknowledge now. A listener that calls in
        // the acknowledgement gets the pool (no recursion through nested inline batches).
        entry.synced = this.log.syncInline();
        this.acknowledgingInline = true;
        try {
          this.onSynced();
        } finally {
          this.acknowledgingInline = false;
        }
        return;
      }
      this.syncsRunning++;
      void this.log.sync().then((synced) => {
        this.syncsRunning--;
        entry.synced = synced;
        this.onSynced();
      });
    }
  }

  /**
   * True when the batch just written (`count` transactions, none in flight before it) may sync
   * inline (log/inline-sync.ts): it is everything that waits, small, no snapshot is being written
   * (its I/O would slow the fdatasync and its work would wait behind it), and the thread is idle.
   */
  private syncInlineDue(count: number): boolean {
    return count <= this.syncInlineTxMax && this.writtenTx === this.queue.length && !this.acknowledgingInline
      && this.snapshotInFlight === undefined && this.log.threadIdle;
  }

  /**
   * The group-commit writer, step 2: a fdatasync settled. Acknowledge the batches at the head of
   * the pipeline whose own fdatasync (begun after their write) succeeded, in offset order; a
   * failed one fails the store. Then write what queued up meanwhile.
   */
  private onSynced(): void {
    let head: InFlightBatch | undefined;
    while (!this.failure && (head = this.inFlight[0]) !== undefined && head.synced !== undefined) {
      this.inFlight.shift();
      const { datasyncError, datasyncMs } = head.synced;
      if (datasyncError !== undefined) {
        // Never retry a failed fsync and acknowledge: the page cache may have dropped the data.
        this.failSync(datasyncError);
        break;
      }
      if (this.filesDeleted()) {
        this.failFilesDeleted();
        break;
      }
      this.log.commit(head.written);
      const count = head.batch.length;
      this.queue.splice(0, count);
      this.writtenTx -= count;
      this.durable = head.batch[count - 1]!.offset;
      this.acknowledge(head.batch);
      try {
        this.options.onBatch?.({ count, bytes: head.bytes, writeMs: head.written.writeMs, datasyncMs, syncedInline: head.syncedInline, commitMs: commitLatenciesMs(head.batch) });
      } catch (error) {
        this.options.onBackgroundError?.(error); // an observer's bug must not fail the store
      }
    }
    if (this.writeFailure && this.inFlight.length === 0) this.settleWriteFailure();
    this.cutBatches();
    this.releaseIdle();
  }

  /** Rotate once the active segment is wholly durable, then go on writing. A failed rotation is a failed write. */
  private async rotateThenCut(): Promise<void> {
    this.rotating = true;
    try {
      await this.log.rotate();
    } catch (error) {
      this.writeFailure ??= { error };
    } finally {
      this.rotating = false;
    }
    if (this.writeFailure && this.inFlight.length === 0) this.settleWriteFailure();
    this.cutBatches();
    this.releaseIdle();
  }

  private failFilesDeleted(): void {
    this.fail(`the store's files were deleted while it was open (${this.logDir}): nothing more is acknowledged; what it held is gone unless restored from a backup`, 'files_deleted');
  }

  /**
   * Before writing by path (a snapshot, its retention, the closing checkpoint): an idle store never
   * acknowledged anything since its directory was deleted, so nothing looked. Another store may be
   * in its place by now (a restore), and those writes would go into that one: fail instead.
   */
  private failIfFilesDeleted(): void {
    if (!this.failure && this.log.activeUnlinked) this.failFilesDeleted();
  }

  /** Whether the active segment lost its name, looked at no more often than every filesCheckMs (a stat is ~3 us). */
  private filesDeleted(): boolean {
    const nowMs = performance.now();
    if (nowMs - this.filesCheckedMs < this.filesCheckMs) return false;
    this.filesCheckedMs = nowMs;
    return this.log.activeUnlinked;
  }

  /** Every batch written before the failed write is acknowledged: roll back the rest. */
  private settleWriteFailure(): void {
    const { error } = this.writeFailure!;
    this.writeFailure = undefined;
    if (!this.failure) {
      const failure = new WriteNotApplied((error as NodeJS.ErrnoException).code, (error as Error).message);
      this.rollbackPending(failure);
      this.options.onBackgroundError?.(failure);
    }
    this.releaseIdle();
  }

  /**
   * A batch's fdatasync failed: its frames (and the later batch's) may be on disk or not. The
   * store fails at once (no more writes, no reads on this open), but its callers wait until the
   * log is cut back to the durable end (Commitlog.cutUnsynced): then every unacknowledged
   * transaction rolls back and its caller hears WriteNotApplied (a retry is safe), or
   * WriteOutcomeUnknown when the cut failed (the next open may replay them). The queue holds
   * them until then, so a close waits for the cut.
   */
  private failSync(datasyncError: unknown): void {
    const reason = `fdatasync failed: ${(datasyncError as Error).message}`;
    this.failure = new StoreFailed(reason, 'fdatasync_failed');
    this.options.onBackgroundError?.(this.failure);
    const unsynced = this.queue.slice(0, this.writtenTx).map((p) => p.frame);
    this.inFlight.length = 0;
    void this.log.cutUnsynced(unsynced).then(
      () => new WriteNotApplied((datasyncError as NodeJS.ErrnoException).code, reason),
      (cutError: unknown) => new WriteOutcomeUnknown(`${reason}; cutting the log back failed: ${(cutError as Error).message}`),
    ).then((answer) => {
      this.writtenTx = 0;
      this.writeFailure = undefined; // a later batch's refused write: rolled back with the rest
      this.rollbackPending(answer);
      this.releaseIdle();
    });
  }

  private get writerIdle(): boolean {
    return this.queue.length === 0 && this.syncsRunning === 0 && !this.rotating;
  }

  private releaseIdle(): void {
    if (this.idleWaiters.length === 0 || !this.writerIdle) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves once nothing is queued, syncing or rotating (after a failure: once its fdatasyncs settled). */
  private whenWriterIdle(): Promise<void> {
    if (this.writerIdle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The next batch: queue entries from `from`, bounded by batchTxMax and batchBytesMax. */
  private nextBatchSize(from: number): { count: number; bytes: number } {
    const countMax = Math.min(batchTxMax, this.queue.length - from);
    let count = 0;
    let bytes = 0;
    while (count < countMax) {
      const length = this.queue[from + count]!.frame.length;
      if (count > 0 && bytes + length > batchBytesMax) break;
      bytes += length;
      count++;
    }
    return { count, bytes };
  }

  private acknowledge(batch: readonly Pending[]): void {
    for (const p of batch) p.resolve({ offset: p.offset, result: p.result, replayed: false });
    this.releaseWaiters();
    if (this.hub.size > 0) for (const p of batch) this.hub.publish(p.offset, this.netOf(p));
    if (this.commitListeners.size > 0) {
      // Decoded from the frames when a listener reads them: most read a few fields or nothing.
      const records = batch.map((p): TxRecord => new FrameTxRecord(p.offset, p.frame, this.schemas));
      for (const listener of this.commitListeners) {
        try {
          listener(records);
        } catch (error) {
          this.options.onBackgroundError?.(error);
        }
      }
    }
    this.txSinceSnapshot += batch.length;
    const everyTx = this.options.snapshotEveryTx ?? 0;
    if (everyTx > 0 && this.txSinceSnapshot >= everyTx) this.backgroundSnapshot();
    this.scheduleCompaction();
  }

  /**
   * Arena compaction (row-arena.ts, Table.compactStep): once a table's dead row bytes outweigh
   * its live ones, its rows move in short steps, each on its own tick between batches.
   */
  private scheduleCompaction(): void {
    if (this.compactionScheduled || this.closing || this.failure) return;
    let wanted = false;
    for (const t of this.tables.values()) wanted ||= t.arena.compacting || t.arena.compactionDue;
    if (!wanted) return;
    this.compactionScheduled = true;
    setImmediate(() => {
      this.compactionScheduled = false;
      if (this.closing || this.failure) return;
      for (const t of this.tables.values()) t.compactStep();
      this.scheduleCompaction();
    });
  }

  /** A pending transaction's row changes: its own records when kept, else decoded from its frame. */
  private netOf(p: Pending): NetTableChanges[] {
    return p.net ?? fromTableChanges(new FrameTxRecord(p.offset, p.frame, this.schemas).changes, this.keyOfRow);
  }

  private readonly keyOfRow = (table: string, row: Row): string => this.tables.get(table)!.keyOf(row);

  /** A write failed (e.g. ENOSPC) or was cut off the log: undo every unacknowledged transaction, newest first; their callers hear `answer`. */
  private rollbackPending(answer: MemoryError): void {
    if (this.writtenTx !== 0) throw new Error(`rollback with ${this.writtenTx} transactions written and not acknowledged`);
    const pending = this.queue.splice(0, this.queue.length);
    for (let i = pending.length - 1; i >= 0; i--) {
      const net = this.netOf(pending[i]!);
      for (const { table, keyChanges } of net) {
        const t = this.tables.get(table)!;
        for (const c of keyChanges) {
          if (c.old) t.put(c.key, c.old);
          else t.remove(c.key);
        }
      }
      this.applyDerived(net, 'undo');
    }
    this.applied = this.durable;
    for (const p of pending) p.reject(answer);
    for (const w of this.takeWaitersAbove(this.durable)) (w.rolledBack ? w.rolledBack() : w.reject(answer));
  }

  private fail(reason: string, kind: StoreFailureKind): void {
    if (!this.failure) this.failure = new StoreFailed(reason, kind);
    const pending = this.queue.splice(0, this.queue.length);
    this.inFlight.length = 0;
    this.writtenTx = 0;
    for (const p of pending) p.reject(this.failure);
    for (const w of this.takeWaitersAbove(this.durable)) w.reject(this.failure);
    this.options.onBackgroundError?.(this.failure);
    this.releaseIdle();
  }

  // ---------------------------------------------------------------- reads

  private readonly tableReader = (name: string): TableReader => {
    const t = this.liveTables.get(name);
    if (!t) throw new MemoryError('invalid_argument', `no table ${name}`);
    return t;
  };

  read<T>(fn: (view: ReadView) => T): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    let result: T;
    const at = this.applied;
    try {
      result = fn({ offset: at, table: this.tableReader });
    } catch (error) {
      // A refusal answers on this state too (not_found of a row a pending write deleted): it waits as a result does.
      return this.answerWhenDurable(at, () => {
        throw error;
      }, () => this.read(fn));
    }
    if (at <= this.durable) return Promise.resolve(result);
    // A write queued before this read that fails takes `at` away, not the data read: read again.
    return this.answerWhenDurable(at, () => result, () => this.read(fn));
  }

  /** Resolves once `offset` is durable; rejects if it is rolled back or the store fails. */
  waitDurable(offset: number): Promise<void> {
    if (offset <= this.durable) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ offset, resolve, reject }));
  }

  /**
   * `answer()` once `offset` is durable. A failed write that rolls `offset` back answers with
   * `again()` instead, run right after the rollback, on the rolled-back state (all of it durable
   * then): a call that only waited for other transactions must not fail with their write. A
   * failed store rejects.
   */
  /**
   * A refusal is an answer on the state the call saw (not_found of a row a pending write deleted):
   * released once that state is durable, as a result is; a failed write that takes it away runs
   * the call again (`again`). Only the refusal path pays for it, not every call.
   */
  private refuseCall(tx: Transaction, error: unknown, again: () => Promise<CallResult>): Promise<CallResult> {
    tx.rollback();
    return this.answerWhenDurable<CallResult>(tx.offset - 1, () => {
      throw error;
    }, again);
  }

  private answerWhenDurable<T>(offset: number, answer: () => T | Promise<T>, again: () => Promise<T>): Promise<T> {
    if (offset <= this.durable) return Promise.resolve().then(answer);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      const settle = (run: () => T | Promise<T>) => {
        try {
          resolve(run());
        } catch (error) {
          reject(error);
        }
      };
      this.waiters.push({ offset, resolve: () => settle(answer), reject, rolledBack: () => settle(again) });
    });
  }

  private releaseWaiters(): void {
    if (this.waiters.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) (w.offset <= this.durable ? w.resolve() : keep.push(w));
    this.waiters = keep;
  }

  /** The waiters for offsets past `offset` (rolled back, or never to be durable), taken off the list. */
  private takeWaitersAbove(offset: number): Waiter[] {
    const keep: Waiter[] = [];
    const taken: Waiter[] = [];
    for (const w of this.waiters) (w.offset > offset ? taken : keep).push(w);
    this.waiters = keep;
    return taken;
  }

  /**
   * A key reused with other arguments is a client's bug (two different calls under one key): it
   * is refused, not answered with the first call's result as if it were this one's. The first
   * call's arguments are read from its frame (no copy kept per key); once a snapshot has retired
   * that segment they are gone, and the key replays as before.
   */
  private async refuseOtherArguments(offset: number, args: unknown): Promise<void> {
    const payload = await this.payloadAt(offset);
    if (payload === undefined) return;
    const first = decodeInvocation(offset, payload).args;
    if (!isDeepStrictEqual(first, argsAsStored(args))) {
      throw new MemoryError('conflict', `this idempotency key was first used (offset ${offset}) with other arguments`, 'use a new idempotency key for a different call');
    }
  }

  async readTx(offset: number): Promise<TxRecord | undefined> {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > this.durable) return undefined;
    const payload = await this.payloadAt(offset);
    return payload ? decodePayload(offset, payload, this.schemas) : undefined;
  }

  /**
   * A durable frame's payload read back from the log (readTx: an object's history, a WebSocket
   * resume's catch-up; an idempotency key's replay). Every read of the log after the open goes
   * through here: a frame acknowledged earlier that no longer verifies is damage found while the
   * store serves, past the open that names the store, so it is named here.
   */
  private async payloadAt(offset: number): Promise<Buffer | undefined> {
    try {
      return await this.log.readPayload(offset);
    } catch (error) {
      throw namingStoreDir(error, this.dir, true);
    }
  }

  /**
   * The log's segments with their durable sizes, read in one tick: a copy of each file up to
   * `bytes` is a whole, fdatasync'ed log ending at the last offset of the last segment.
   */
  logSources(): LogSource[] {
    return this.log.segments.map((s) => ({ file: s.file, firstOffset: s.firstOffset, frames: s.positions.length, bytes: s.end }));
  }

  /** First offset the log still holds (older ones are only in snapshots). */
  get logFirstOffset(): number {
    return this.log.firstOffset;
  }

  onCommit(listener: (txs: readonly TxRecord[]) => void): Unsubscribe {
    this.commitListeners.add(listener);
    return () => void this.commitListeners.delete(listener);
  }

  subscribe(
    table: string,
    predicate: (row: Row) => boolean,
    listener: (offset: number, changes: readonly RowChange[]) => void,
    options: SubscribeOptions = {},
  ): Unsubscribe {
    if (!this.liveTables.has(table)) throw new MemoryError('invalid_argument', `no table ${table}`);
    return this.hub.subscribe(options.equals ? { table, predicate, equals: options.equals } : { table, predicate }, listener);
  }

  // ---------------------------------------------------------------- snapshots, hash, close

  stateHash(): string {
    return canonicalStateHash(this.tableStates(false));
  }

  /** What the tables' rows cost in arena bytes, summed over the tables. */
  rowBytes(): RowBytes {
    return sumRowBytes([...this.tables.values()].map((t) => t.arena.rowBytes));
  }

  /** Live row bytes summed over the tables (rowBytes().live, without the allocations). */
  liveRowBytes(): number {
    let live = 0;
    for (const table of this.tables.values()) live += table.arena.liveBytes;
    return live;
  }

  /** What the store holds in memory, estimated from its tables' counters (memory-estimate.ts). */
  memoryBytesEstimate(): number {
    // Read at every last-lease release of an HTTP tenant: counters only, no allocation.
    let rowBytesHeld = 0;
    let rows = 0;
    for (const table of this.tables.values()) {
      rowBytesHeld += table.arena.bytesHeld + table.arena.spareBytes;
      rows += table.size;
    }
    return storeMemoryBytesEstimate(rowBytesHeld, rows);
  }

  /** The retired tables among tableCounts() (StoreModule.retiredTables), sorted: kept and counted, reached by nothing. */
  retiredTables(): string[] {
    return [...this.retiredTableNames].sort();
  }

  /** Row counts per table (for verify and tenants list). */
  tableCounts(): Record<string, number> {
    return Object.fromEntries([...this.tables].map(([name, t]) => [name, t.size]));
  }

  /** The tables the canonical stream holds: every one, but an empty table added since the module's first stores (StoreModule.tablesHashedWhenEmpty). */
  private tableStates(clone: boolean): TableState[] {
    const hashedWhenEmpty = this.options.module.tablesHashedWhenEmpty;
    return [...this.tables.values()]
      .filter((t) => t.size > 0 || hashedWhenEmpty === undefined || t.schema.name === idempotencyTable.name || hashedWhenEmpty.includes(t.schema.name))
      .map((t) => ({ schema: t.schema, rows: clone ? t.cloneRows() : t.rows, arena: t.arena }));
  }

  snapshot(): Promise<{ offset: number; stateHash: string }> {
    this.failIfFilesDeleted();
    if (this.failure) return Promise.reject(this.failure);
    if (this.snapshotInFlight) {
      // One at a time; a caller asking during one gets the next, covering its own writes.
      return this.snapshotInFlight.catch(() => undefined).then(() => this.snapshot());
    }
    const offset = this.applied;
    const tables = this.tableStates(true); // O(1) copy-on-write clones: commits go on
    // Waited for now, not once the files are written: a failed write may roll `offset` back
    // meanwhile, and a later transaction that reuses the offset must not vouch for this state.
    const durable = this.waitDurable(offset);
    durable.catch(() => undefined); // heard by the writer, before its manifest
    // The clones read the arenas: a compaction must not release chunks under them.
    const unpins = [...this.tables.values()].map((t) => t.arena.pin());
    const run = this.writeSnapshotAt(offset, tables, durable).finally(() => {
      for (const unpin of unpins) unpin();
      // Runs after the assignment below even when the write finished synchronously.
      if (this.snapshotInFlight === run) this.snapshotInFlight = undefined;
    });
    this.snapshotInFlight = run;
    return run;
  }

  private async writeSnapshotAt(offset: number, tables: TableState[], durable: Promise<void>): Promise<{ offset: number; stateHash: string }> {
    if (offset === this.lastSnapshotOffset && (offset < 0 || (await this.snapshotWholeAt(offset)))) {
      return { offset, stateHash: this.lastSnapshotHash ?? canonicalStateHash(tables) };
    }
    let manifest: SnapshotManifest;
    try {
      manifest = await writeSnapshot({ storeDir: this.dir, fl: this.fl, tables, offset, nowMs: this.clock(), history: this.historyRecord, waitDurable: () => durable });
    } catch (error) {
      throw asSnapshotNotTaken(error); // the writer removed what it began; the store goes on
    }
    // The directory holds a new, verified snapshot now: one the open skipped there (damaged) is gone, and retention must keep this one.
    this.damagedSnapshotDirs.delete(path.join(snapshotsDir(this.dir), snapshotDirName(offset)));
    if (offset > this.lastSnapshotOffset) {
      this.lastSnapshotOffset = offset;
      this.lastSnapshotHash = manifest.stateHash;
    }
    this.txSinceSnapshot = Math.max(0, this.applied - offset);
    const olderKept = await applySnapshotRetention(this.dir, this.fl, snapshotsKept, this.damagedSnapshotDirs);
    if (olderKept !== undefined) await this.log.deleteSegmentsThrough(olderKept);
    return { offset, stateHash: manifest.stateHash };
  }

  /**
   * The snapshot at `offset` is there with both files matching its manifest. The open verified
   * only the msgpack file it loaded: a damaged JSON file beside it is written again, not kept.
   */
  private async snapshotWholeAt(offset: number): Promise<boolean> {
    const ref = (await listSnapshots(this.dir, this.fl)).find((r) => r.offset === offset);
    return ref !== undefined && (await verifySnapshotFiles(ref, this.fl)) === undefined;
  }

  private backgroundSnapshot(): void {
    if (this.snapshotInFlight || this.closing || this.failure) return;
    this.txSinceSnapshot = 0;
    this.snapshot().catch((error) => this.options.onBackgroundError?.(asSnapshotNotTaken(error)));
  }

  /** The state hash for the checkpoint: a snapshot just written at this offset already proved it. */
  private closingStateHash(): string {
    if (this.applied === this.lastSnapshotOffset && this.lastSnapshotHash !== undefined) return this.lastSnapshotHash;
    return this.stateHash();
  }

  /**
   * Finish pending writes, write a checkpoint (offset + state hash) and release the directory.
   * A checkpoint that fails (disk full) is reported, and the log and the lock are released all
   * the same: the next open, in this process or another, replays and checks without it (the
   * checkpoint is one file renamed into place, so none or a whole one is there).
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    try {
      await this.whenWriterIdle();
      await this.snapshotInFlight?.catch(() => undefined);
      this.failIfFilesDeleted();
      await this.log.dropPrepared(); // its space first: the checkpoint may need it
      if (!this.failure) {
        const checkpoint = encodeCheckpoint({ offset: this.applied, stateHash: this.closingStateHash(), history: this.historyRecord });
        await this.fl.writeFileDurable(path.join(this.logDir, checkpointFileName), checkpoint).catch((error: unknown) => {
          throw new StoreFileNotWritten('the store closed without writing its checkpoint: the next open replays the log as usual', error,
            'free disk space on the store\'s filesystem; the store needs no repair');
        });
      }
    } finally {
      await this.log.close().finally(this.releaseLock);
    }
  }
}

function recordIdempotencyKey(tx: Transaction, key: string, reducer: string, offset: number, result: unknown, atMs: number): void {
  const table = tx.table(idempotencyTable.name);
  table.insert({ key, reducer, offset, result: result === undefined ? null : result, at_ms: atMs });
  // Bounded: the oldest key goes once the table is full (deterministic: lowest offset first).
  if (table.size > idempotencyKeysMax) {
    const oldest = table.page({ index: 'by_offset', limit: 1 }).rows[0];
    if (oldest) table.delete([oldest.key as string]);
  }
}
