/**
 * A read-only look at a store directory: segments with their frame ranges and the first
 * problem in each, snapshots with their verification status. Changes no file.
 */
import * as path from 'node:path';
import type { FileLayer } from './io/file-layer.js';
import { nodeFileLayer } from './io/node-file-layer.js';
import { listSegments, scanSegmentBytes } from './log/recovery.js';
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
}

export interface SnapshotReport {
  readonly dir: string;
  readonly offset: number;
  readonly stateHash?: string;
  readonly tables?: Record<string, number>;
  readonly problem?: string;
}

export interface InspectReport {
  readonly dir: string;
  readonly segments: SegmentReport[];
  readonly snapshots: SnapshotReport[];
}

export async function inspectStore(dir: string, fl: FileLayer = nodeFileLayer): Promise<InspectReport> {
  const segments: SegmentReport[] = [];
  const files = await listSegments(path.join(dir, 'log'), fl);
  for (let i = 0; i < files.length; i++) {
    const { file, firstOffset } = files[i]!;
    const buf = await fl.readFile(file);
    const { info, problem, zeroTail } = scanSegmentBytes(buf, file, firstOffset);
    const frames = info.positions.length;
    // Zeros after the last frame end the last segment cleanly; in a sealed one they are damage.
    const cleanZeroTail = zeroTail && i === files.length - 1;
    segments.push({
      file: path.relative(dir, file), firstOffset, lastOffset: frames ? firstOffset + frames - 1 : null, frames, bytes: buf.length,
      ...(cleanZeroTail ? { zeroTailBytes: buf.length - info.end } : problem ? { problem: { position: problem.position, reason: problem.reason } } : {}),
    });
  }
  const snapshots: SnapshotReport[] = [];
  for (const ref of await listSnapshots(dir, fl)) {
    const problem = await verifySnapshotFiles(ref, fl);
    snapshots.push({
      dir: path.relative(dir, ref.dir), offset: ref.offset,
      ...(ref.manifest ? { stateHash: ref.manifest.stateHash, tables: ref.manifest.tables } : {}),
      ...(problem ? { problem } : {}),
    });
  }
  return { dir, segments, snapshots };
}
