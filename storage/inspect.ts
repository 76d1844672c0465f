/**
 * A read-only look at a store directory: segments with their frame ranges and the first
 * problem in each (a segment that does not chain on from the one before it is one: a gap or a
 * segment of another store), snapshots with their verification status. Changes no file.
 */
import * as path from 'node:path';
import { lockHolder } from './store-lock.js';
import { DamagedStore } from './errors.js';
import type { FileLayer } from './io/file-layer.js';
import { nodeFileLayer } from './io/node-file-layer.js';
import { checkChain, listSegments, scanSegmentBytes, SegmentReader, type SegmentInfo } from './log/recovery.js';
import { listSnapshots, verifySnapshotFiles } from './snapshot/reader.js';

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

export interface InspectReport {
  readonly dir: string;
  /** The process holding the store's LOCK, or null: inspect reads a live store as it is at that moment. */
  readonly openByPid: number | null;
  readonly segments: SegmentReport[];
  readonly snapshots: SnapshotReport[];
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
 */
export async function inspectStore(
  dir: string,
  fl: FileLayer = nodeFileLayer,
  onSegment?: (done: number, total: number) => void,
  reader = new SegmentReader(fl),
): Promise<InspectReport> {
  // A live writer fills its last segment and writes snapshots while this reads: what it is in the
  // middle of is reported as in progress, not as damage (exit 3); inspect a closed store to judge.
  const openByPid = lockHolder(dir);
  const live = openByPid !== null;
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
    const problem = await verifySnapshotFiles(ref, fl);
    if (problem && live && !(await fl.exists(ref.dir))) continue; // retired by the writer while this read it
    const beingWritten = problem !== undefined && live && !ref.manifest;
    snapshots.push({
      dir: path.relative(dir, ref.dir), offset: ref.offset,
      ...(ref.manifest ? { stateHash: ref.manifest.stateHash, tables: ref.manifest.tables } : {}),
      ...(problem && !beingWritten ? { problem } : {}),
      ...(beingWritten ? { inProgress: `being written by pid ${openByPid} (no manifest yet)` } : {}),
    });
  }
  return { dir, openByPid, segments, snapshots };
}
