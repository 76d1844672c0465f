/**
 * Operating errors are values with a stable code; programmer errors are `assert` failures.
 * The MCP layer maps `MemoryError` codes to `isError` results in one place.
 */
import { shellWord } from './shell-word.js';

export type MemoryErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'version_conflict'
  | 'limit_exceeded'
  | 'forbidden'
  | 'unauthenticated'
  | 'busy'
  | 'conflict'
  | 'unavailable'
  /** The disk failed while a write was made durable, and whether it was is not known yet (WriteOutcomeUnknown). */
  | 'outcome_unknown'
  | 'internal';

export class MemoryError extends Error {
  constructor(
    readonly code: MemoryErrorCode,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'MemoryError';
  }
}

/**
 * A write the disk refused (ENOSPC, or another error of the write itself), or a batch whose
 * fdatasync failed and whose frames were then cut off the log, durably: the calls of that batch
 * were rolled back, nothing was applied, so a retry cannot apply one twice. After a refused
 * write the store goes on; after a failed fdatasync it refuses writes until reopened.
 */
export class WriteNotApplied extends MemoryError {
  constructor(readonly errno: string | undefined, detail: string) {
    // Said for an agent that reads it: the disk is not its to free, and deleting memory cannot
    // make room (a delete is one more frame in the log), so the hint sends it to an operator.
    const full = errno === 'ENOSPC' || errno === 'EDQUOT';
    super('unavailable', `${full ? `the disk is full (${errno})` : `the write to disk failed (${errno ?? detail})`}; this call was not applied and nothing acknowledged was lost`,
      full ? diskFullHint : 'retry later: the call was not applied, so a retry is safe');
  }
}

/** What an agent is told when the disk (or a quota) has no room for what its call must write: a write, a store's open. */
export const diskFullHint =
  "an operator must free disk space on the store's filesystem; then retry (the call was not applied, so a retry is safe). Deleting memory frees none: a delete is a write too";

/**
 * A batch's fdatasync failed and cutting its frames off the log failed too: they may be on disk,
 * and the next open would replay them. The store stays failed; what happened is known only once
 * it reopens.
 */
export class WriteOutcomeUnknown extends MemoryError {
  constructor(detail: string) {
    super('outcome_unknown', `the disk failed while this call was made durable (${detail}), and its frames could not be cut off the log: it may or may not be durable; read after the store reopens to know`,
      'read what this call changes once the store has reopened, then call again only if it is missing (with an idempotency key a repeated call is answered, not applied twice)');
  }
}

/** A store's LOCK is held by a live process (another one, or this one): `conflict` naming it. */
export class StoreLockHeld extends MemoryError {
  constructor(readonly dir: string, readonly holderPid: number) {
    super('conflict', holderPid === process.pid ? `store ${dir} is already open in this process` : `store ${dir} is open in process ${holderPid}`,
      holderPid === process.pid ? undefined : 'stop that process first (a LOCK naming a process that has ended is taken over by itself)');
    this.name = 'StoreLockHeld';
  }
}

/**
 * What repairs a damaged store: `store repair` on its directory, named once the open that found
 * the damage knows it (DamagedStore.withStoreDir). Repair takes the store's LOCK (StoreLockHeld),
 * so it is refused while a process has the store open; a server whose open failed does not.
 */
function repairHint(storeDir: string | undefined, foundWhileServing: boolean): string {
  const command = `ioboxx-memory store repair ${storeDir === undefined ? 'DIR' : shellWord(storeDir)}`;
  const what = 'it moves the damaged part aside and says what it dropped';
  // Found by a store that serves: its process holds the LOCK, so repair is refused until it stops.
  if (foundWhileServing) return `stop the process serving the store (it holds the store's LOCK), then run \`${command}\`: ${what}`;
  return `run \`${command}\`${storeDir === undefined ? " (DIR: the store's directory)" : ''} while no process has the store open ` +
    `(a server whose open of it failed does not hold it): ${what}`;
}

/**
 * The log or a snapshot is damaged somewhere recovery may not silently cut: the file and byte, and
 * what the operator can do (`store repair`, unless the finder knows better).
 */
export class DamagedStore extends Error {
  readonly code = 'damaged_store';
  /** What the operator can do about it: the remedy given, else the repair command. */
  readonly hint: string;
  constructor(
    readonly file: string,
    readonly position: number,
    readonly reason: string,
    /** What the operator can do, when it is not `store repair`. */
    readonly remedy?: string,
    /** The store's directory as its opener named it (the path the operator gave, the server's absolute path). */
    readonly storeDir?: string,
    /** Found by a read of a store already open and serving (not by an open): its process holds the store. */
    readonly foundWhileServing = false,
  ) {
    const hint = remedy ?? repairHint(storeDir, foundWhileServing);
    super(`damaged store: ${file} at byte ${position}: ${reason}; ${hint}`);
    this.name = 'DamagedStore';
    this.hint = hint;
  }

  /**
   * This damage, found by the store in `dir` (its open, or a read while it serves): the places that
   * find it know a file, not the store's directory, so the store names it once for all of them and
   * the hint is the command to paste. A store already named keeps its name (an inner open's).
   */
  withStoreDir(dir: string, foundWhileServing = false): DamagedStore {
    if (this.storeDir !== undefined) return this;
    const named = new DamagedStore(this.file, this.position, this.reason, this.remedy, dir, foundWhileServing);
    // The stack of where the damage was found, under the new message.
    const header = `${this.name}: ${this.message}`;
    if (this.stack?.startsWith(header)) named.stack = `${named.name}: ${named.message}${this.stack.slice(header.length)}`;
    return named;
  }
}

/** `error` with the store in `dir` named when it is damage (DamagedStore.withStoreDir); any other error as it is. */
export function namingStoreDir(error: unknown, dir: string, foundWhileServing = false): unknown {
  return error instanceof DamagedStore ? error.withStoreDir(dir, foundWhileServing) : error;
}

/**
 * A store holds rows of a table its module no longer declares (a release dropped the table): the
 * open refuses, naming the table and where it was found. Not damage: nothing is skipped, moved
 * aside or cut (that would drop acknowledged rows), and the version before still opens the store.
 */
export class TableNotInModule extends Error {
  readonly code = 'table_not_in_module';
  readonly hint: string;
  constructor(readonly table: string, readonly where: string) {
    super(`table ${table} (in ${where}) is not declared by this version's module: its rows would be lost`);
    this.name = 'TableNotInModule';
    this.hint = `run the version before this one, or a release that keeps ${table} declared in the module's retiredTables (its rows kept, unused)`;
  }
}

/** Why a store failed: what an operator looks for first (metrics count failures by it). */
export const storeFailureKinds = ['fdatasync_failed', 'files_deleted', 'writer_out_of_step'] as const;
export type StoreFailureKind = (typeof storeFailureKinds)[number];

/** An fdatasync failed (or the store's files went away): the store refuses writes until it is reopened (never retry and ack). */
export class StoreFailed extends Error {
  readonly code = 'store_failed';
  constructor(
    readonly reason: string,
    readonly kind: StoreFailureKind,
  ) {
    super(`store failed and refuses writes until reopened: ${reason}`);
    this.name = 'StoreFailed';
  }
}

/** Why a snapshot the store takes on its own (periodic, or before a close) was not written. */
export const snapshotNotTakenReasons = ['write_failed', 'free_space_low'] as const;
export type SnapshotNotTakenReason = (typeof snapshotNotTakenReasons)[number];

/**
 * A snapshot was not written: one the store takes on its own (periodic, or before a close), or
 * one asked for (`store snapshot`, a backup). Nothing is lost (the log still holds every
 * transaction; a half-written snapshot's directory is removed) and the store keeps serving; the
 * next open replays more of the log.
 */
export class SnapshotNotTaken extends Error {
  readonly code = 'snapshot_not_taken';
  /** What to do about it, when the cause says (a full disk or quota). */
  readonly hint?: string;
  constructor(
    readonly reason: SnapshotNotTakenReason,
    detail: string,
    options?: { cause?: unknown; hint?: string },
  ) {
    super(`snapshot not taken (${reason}): ${detail}; the log still holds every transaction`, options);
    this.name = 'SnapshotNotTaken';
    if (options?.hint !== undefined) this.hint = options.hint;
  }
}

/**
 * The disk refused a small file a close or an open writes (the checkpoint, the LOCK): said with
 * what it was for, the errno kept as `code` (ENOSPC, EACCES, ...: the operator's metrics count
 * by it) and the error as `cause`. Nothing acknowledged is lost by it.
 */
export class StoreFileNotWritten extends Error {
  readonly code: string;
  readonly hint?: string;
  constructor(what: string, cause: unknown, hintWhenFull: string) {
    const errno = (cause as NodeJS.ErrnoException | null)?.code;
    super(`${what} (${(cause as Error)?.message ?? String(cause)}); nothing acknowledged is lost`, { cause });
    this.name = 'StoreFileNotWritten';
    this.code = errno ?? 'write_failed';
    if (errno === 'ENOSPC' || errno === 'EDQUOT') this.hint = hintWhenFull;
  }
}

/** A snapshot's write failed: said as such, with the error as its cause (and a hint when the disk or a quota is full). */
export function asSnapshotNotTaken(error: unknown): SnapshotNotTaken {
  if (error instanceof SnapshotNotTaken) return error;
  // The errno is a node error's code, or the errno of the log write the snapshot waited for (WriteNotApplied).
  const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown };
  const full = [code, errno].some((c) => c === 'ENOSPC' || c === 'EDQUOT');
  const hint = full ? 'free disk space, then take the snapshot again; the store keeps serving meanwhile' : undefined;
  return new SnapshotNotTaken('write_failed', (error as Error)?.message ?? String(error), hint === undefined ? { cause: error } : { cause: error, hint });
}
