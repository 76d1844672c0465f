/**
 * A read-only look at a store directory: segments with their frame ranges and the first
 * problem in each (a segment that does not chain on from the one before it is one: a gap or a
 * segment of another store), snapshots with their verification status. Changes no file.
 *
 * Given the store's module, it also judges as the open does, with the open's own code: each
 * snapshot is loaded as the open loads it (a manifest whose table counts or state hash do not
 * match its files is invalid there), and a store no process has open is opened read-only (the
 * engine's open in memory, as `store verify --read-only`), so what the open refuses (a log that
 * ends before a snapshot or the clean-close checkpoint, a state hash that differs from the
 * checkpoint's) is a problem here too.
 *
 * Beside a live writer, whose retention removes old segments and snapshots while this reads
 * them: a file gone between listing and reading is read again from a fresh listing, up to
 * inspectAttemptsMax times; past that the report says the store is changing, never damage.
 */
import * as path from 'node:path';
import { lockHolder } from './store-lock.js';
import { DamagedStore, TableNotInModule } from './errors.js';
import type { FileLayer } from './io/file-layer.js';
import { nodeFileLayer } from './io/node-file-layer.js';
import { OverlayFileLayer } from './io/overlay-file-layer.js';
import { checkChain, listSegments, scanSegmentBytes, SegmentReader, type SegmentInfo } from './log/recovery.js';
import { retiredTableNames, type StoreModule } from './reducer.js';
import type { TableSchema } from './schema.js';
import { listSnapshots, loadSnapshot, SnapshotInvalid, verifySnapshotFiles, type SnapshotRef } from './snapshot/reader.js';
import { Store, storeSchemas } from './store.js';

/** Passes over a store whose files a live writer removed while they were read, before it is reported as changing. */
export const inspectAttemptsMax = 4;

export interface SegmentReport {
  readonly file: string;
  readonly firstOffset: number;
  readonly lastOffset: number | null;
  readonly frames: number;
  readonly bytes: number;
  /** Zeros after the last frame of the last segment (a store open now, or one that crashed): a clean end. */
  readonly zeroTailBytes?: number;
  readonly problem?: { position: number; reason: string };
  /** The store is open (LOCK held): what a live writer's tail looks like mid-write, not damage. */
  readonly inProgress?: string;
}

export interface SnapshotReport {
  readonly dir: string;
  readonly offset: number;
  readonly stateHash?: string;
  readonly tables?: Record<string, number>;
  readonly problem?: string;
  /** The store is open: a snapshot being written (no manifest yet), not damage. */
  readonly inProgress?: string;
}

/** What the open says of the store, from the engine's own open run with no file changed. */
export type RecoveryReport =
  | { readonly opens: true; readonly lastOffset: number; readonly stateHash: string; readonly snapshotOffset: number }
  /** The open refuses: where and why, as its error says. */
  | { readonly opens: false; readonly file: string; readonly position: number; readonly reason: string; readonly hint?: string }
  /** Not opened: the store is open in a process (its LOCK), or was opened while this checked it. */
  | { readonly notRun: string };

export interface InspectReport {
  readonly dir: string;
  /** The process holding the store's LOCK, or null: inspect reads a live store as it is at that moment. */
  readonly openByPid: number | null;
  readonly segments: SegmentReport[];
  readonly snapshots: SnapshotReport[];
  /** Only when a module was given. */
  readonly recovery?: RecoveryReport;
  /** Only when a module was given: the tables among the snapshots' (and the open's) that it retired (StoreModule.retiredTables): rows kept, reached by nothing. */
  readonly retiredTables?: string[];
  /** Files kept vanishing while read (a live writer's retention): the report is of a store in motion, not damage. */
  readonly changing?: string;
}

/** One problem the report lists: a segment's, a snapshot's, or the open's refusal. `file` is relative to the store for the first two. */
export interface InspectProblem {
  readonly file: string;
  readonly position?: number;
  readonly reason: string;
}

/** Every problem the report lists: `store inspect` exits 3 when there is one, `tenants list --check` calls the store damaged. */
export function inspectProblems(report: InspectReport): InspectProblem[] {
  const problems: InspectProblem[] = [];
  for (const s of report.segments) if (s.problem) problems.push({ file: path.join(report.dir, s.file), position: s.problem.position, reason: s.problem.reason });
  for (const s of report.snapshots) if (s.problem) problems.push({ file: path.join(report.dir, s.dir), reason: s.problem });
  const recovery = report.recovery;
  if (recovery && 'opens' in recovery && !recovery.opens) problems.push({ file: recovery.file, position: recovery.position, reason: `the store refuses to open: ${recovery.reason}` });
  return problems;
}

/** The recovery rule that segments chain (recovery.ts), as a problem of `file` instead of a refused open. */
function chainProblem(previous: SegmentInfo | undefined, file: string, firstOffset: number): { position: number; reason: string } | undefined {
  try {
    checkChain(previous, file, firstOffset);
    return undefined;
  } catch (error) {
    if (!(error instanceof DamagedStore)) throw error;
    return { position: error.position, reason: error.reason };
  }
}

/**
 * `onSegment(done, total)`: after each segment is scanned, for a progress bar (`tenants list --check`).
 * `reader`: the buffer segments are read into, shared by a check of many stores.
 * `module`: the store's tables and reducers, to judge snapshots and the open as the engine does (see the top).
 * `onOpenProgress`: the open's own progress (its phases, as `Store.open` reports them), for `store inspect`'s bars.
 */
export async function inspectStore(
  dir: string,
  fl: FileLayer = nodeFileLayer,
  onSegment?: (done: number, total: number) => void,
  reader = new SegmentReader(fl),
  module?: StoreModule,
  onOpenProgress?: (phase: string, done: number, total: number) => void,
): Promise<InspectReport> {
  // The tables a snapshot of this store holds, as the open has them.
  const schemas = module ? storeSchemas(module) : undefined;
  for (let attempt = 1; ; attempt++) {
    const { report, vanished } = await inspectOnce(dir, fl, onSegment, reader, schemas);
    if (vanished.length > 0 && attempt < inspectAttemptsMax) continue; // listed, then removed: list again
    const changing = vanished.length > 0
      ? `files were removed while read, ${attempt} times (last: ${vanished.map((f) => path.relative(dir, f)).join(', ')}): a live writer's retention; inspect it again, or closed`
      : undefined;
    // The open, only once the files held still: its verdict on a store in motion means nothing.
    const recovery = module && !changing ? await recoveryReport(dir, module, onOpenProgress) : undefined;
    return { ...report, ...(recovery ? { recovery } : {}), ...(module ? { retiredTables: retiredTableNames(module) } : {}), ...(changing ? { changing } : {}) };
  }
}

/** ENOENT: a file listed a moment ago is gone (or its directory is). */
function isVanished(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** One pass over the files; `vanished`: files listed and then gone before they were read (nothing reported of them). */
async function inspectOnce(
  dir: string,
  fl: FileLayer,
  onSegment: ((done: number, total: number) => void) | undefined,
  reader: SegmentReader,
  schemas: ReadonlyMap<string, TableSchema> | undefined,
): Promise<{ report: InspectReport; vanished: string[] }> {
  // A live writer fills its last segment and writes snapshots while this reads: what it is in the
  // middle of is reported as in progress, not as damage (exit 3); inspect a closed store to judge.
  const openByPid = lockHolder(dir);
  const live = openByPid !== null;
  const vanished: string[] = [];
  const segments: SegmentReport[] = [];
  const files = await listSegments(path.join(dir, 'log'), fl);
  // The segment before, if it had no problem: after a damaged or misplaced one, where the next starts is unknown.
  let previous: SegmentInfo | undefined;
  for (let i = 0; i < files.length; i++) {
    const { file, firstOffset } = files[i]!;
    let buf: Buffer;
    try {
      buf = await reader.read(file); // one buffer for every segment, as an open reads them
    } catch (error) {
      if (isVanished(error)) {
        // Removed since the listing: the next pass lists again. The segment after it chains on from nothing known.
        vanished.push(file);
        previous = undefined;
        continue;
      }
      if (!(error instanceof DamagedStore)) throw error;
      // An entry that is no segment (a directory, a FIFO, a file far too large) is its problem, as the open reports it.
      segments.push({ file: path.relative(dir, file), firstOffset, lastOffset: null, frames: 0, bytes: 0, problem: { position: error.position, reason: error.reason } });
      previous = undefined;
      onSegment?.(i + 1, files.length);
      continue;
    }
    const { info, problem, zeroTail } = scanSegmentBytes(buf, file, firstOffset);
    const frames = info.positions.length;
    // Zeros after the last frame end the last segment cleanly; in a sealed one they are damage.
    const cleanZeroTail = zeroTail && i === files.length - 1;
    // A break in the chain is at the segment's first byte, before any problem of its frames.
    const chainBreak = chainProblem(previous, file, firstOffset);
    const found = chainBreak ?? (problem && !cleanZeroTail ? { position: problem.position, reason: problem.reason } : undefined);
    const writersTail = live && i === files.length - 1 && chainBreak === undefined && found !== undefined;
    segments.push({
      file: path.relative(dir, file), firstOffset, lastOffset: frames ? firstOffset + frames - 1 : null, frames, bytes: buf.length,
      ...(cleanZeroTail ? { zeroTailBytes: buf.length - info.end } : {}),
      ...(found && !writersTail ? { problem: found } : {}),
      ...(writersTail ? { inProgress: `the writer (pid ${openByPid}) is appending at byte ${found.position}: ${found.reason}` } : {}),
    });
    previous = found ? undefined : info;
    onSegment?.(i + 1, files.length);
  }
  const snapshots: SnapshotReport[] = [];
  for (const ref of await listSnapshots(dir, fl)) {
    const problem = (await verifySnapshotFiles(ref, fl)) ?? (schemas ? await snapshotLoadProblem(ref, fl, schemas) : undefined);
    // Retired by the writer while this read it: it removes a snapshot directory whole, never one file of a kept one.
    if (problem && (!(await fl.exists(ref.dir)) || (live && ref.manifest && problem.includes('ENOENT')))) {
      vanished.push(ref.dir);
      continue;
    }
    const beingWritten = problem !== undefined && live && !ref.manifest;
    snapshots.push({
      dir: path.relative(dir, ref.dir), offset: ref.offset,
      ...(ref.manifest ? { stateHash: ref.manifest.stateHash, tables: ref.manifest.tables } : {}),
      ...(problem && !beingWritten ? { problem } : {}),
      ...(beingWritten ? { inProgress: `being written by pid ${openByPid} (no manifest yet)` } : {}),
    });
  }
  return { report: { dir, openByPid, segments, snapshots }, vanished };
}

/** Why the open would skip this snapshot as invalid (it loads it: hashes, table counts, rows), or undefined. */
async function snapshotLoadProblem(ref: SnapshotRef, fl: FileLayer, schemas: ReadonlyMap<string, TableSchema>): Promise<string | undefined> {
  try {
    await loadSnapshot(ref, fl, schemas);
    return undefined;
  } catch (error) {
    // Sound, but not loadable by this release: the open refuses (recovery says so), inspect goes on.
    if (error instanceof TableNotInModule) return `${error.message} (${error.hint})`;
    if (!(error instanceof SnapshotInvalid)) throw error;
    const prefix = `snapshot ${ref.dir}: `;
    return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  }
}

/**
 * The engine's open of `dir` with every change it makes kept in memory (what `store verify
 * --read-only` runs), closed again: its refusal, or where it recovers to. A store a process has
 * open is not opened; one opened while this ran is not judged (its files changed under the read).
 */
async function recoveryReport(dir: string, module: StoreModule, onProgress?: (phase: string, done: number, total: number) => void): Promise<RecoveryReport> {
  const holder = lockHolder(dir);
  if (holder !== null) return { notRun: `open in process ${holder}: not opened here (inspect it closed, or run \`store verify --read-only\` then)` };
  let store: Store;
  try {
    store = await Store.open({ dir, module, fileLayer: new OverlayFileLayer(), ...(onProgress ? { onProgress } : {}) });
  } catch (error) {
    const now = lockHolder(dir);
    if (now !== null) return { notRun: `opened by process ${now} while this checked it: not judged` };
    if (error instanceof DamagedStore) return { opens: false, file: error.file, position: error.position, reason: error.reason, hint: error.hint };
    const e = error as Error & { hint?: string };
    return { opens: false, file: dir, position: 0, reason: e.message, ...(e.hint ? { hint: e.hint } : {}) };
  }
  try {
    return { opens: true, lastOffset: store.lastOffset, stateHash: store.stateHash(), snapshotOffset: store.report.snapshotOffset };
  } finally {
    await store.close();
  }
}
