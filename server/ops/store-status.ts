/**
 * A store's status read from its files alone, never opening it (it may be open in the
 * server): bytes on disk, last offset, newest snapshot, and whether a live process holds it.
 * `tenants list` shows these; reading them changes no file. The status reads only the last
 * segment; `checkStoreFiles` (`tenants list --check`) reads every segment and snapshot, and
 * runs the engine's open in memory on a store no process has open (storage/inspect.ts).
 */
import { lstat, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { inspectProblems, inspectStore } from '../../storage/inspect.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { listSegments, scanSegmentBytes, SegmentReader } from '../../storage/log/recovery.js';
import { listSnapshots } from '../../storage/snapshot/reader.js';
import { lockHolder } from '../../storage/store-lock.js';

/** Directory walks stop this deep: a store is `snapshots/<offset>/file` at most. */
const walkDepthMax = 4;

export interface StoreStatus {
  readonly dir: string;
  readonly bytesOnDisk: number;
  /** Offset of the last whole frame in the log; with no segment, the newest snapshot's (where an open starts); -1 when empty. */
  readonly lastOffset: number;
  readonly lastSnapshot: { readonly offset: number; readonly createdAtMs: number } | null;
  /** The pid of a live process that has the store open, or null. */
  readonly openByPid: number | null;
}

/**
 * `reader`: one for a whole listing, so every store's last segment is read into the same buffer
 * (a fresh 64 MiB buffer costs ~0.3 s of page faults here, a reused one ~30 ms).
 */
export async function readStoreStatus(dir: string, reader = new SegmentReader(nodeFileLayer)): Promise<StoreStatus> {
  const fl = nodeFileLayer;
  const snapshots = (await listSnapshots(dir, fl)).filter((s) => s.manifest);
  const newest = snapshots[0];
  let lastOffset = newest?.offset ?? -1;
  const segments = await listSegments(path.join(dir, 'log'), fl);
  const last = segments.at(-1);
  if (last) {
    // Only the last segment: sealed ones end where the next begins. The log's end, never a
    // snapshot's: one past it means acknowledged transactions are missing (--check says so).
    const { info } = scanSegmentBytes(await reader.read(last.file), last.file, last.firstOffset);
    lastOffset = last.firstOffset + info.positions.length - 1;
  }
  return {
    dir,
    bytesOnDisk: await bytesUnder(dir, walkDepthMax),
    lastOffset,
    lastSnapshot: newest?.manifest ? { offset: newest.offset, createdAtMs: newest.manifest.createdAtMs } : null,
    openByPid: lockHolder(dir),
  };
}

async function bytesUnder(dir: string, depthLeft: number): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory() && depthLeft > 0) total += await bytesUnder(full, depthLeft - 1);
    else if (entry.isFile()) total += (await lstat(full).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** Where a store's files are damaged: a segment's file and byte, or a snapshot's directory. */
export interface StoreDamage {
  readonly file: string;
  readonly position?: number;
  readonly reason: string;
}

/** `changing`: a live writer removed files while they were read, again and again: not judged damaged. */
export type StoreCheck = { readonly ok: true; readonly changing?: string } | { readonly ok: false; readonly damage: readonly StoreDamage[] };

/**
 * Every segment's frames checked (CRC, offsets, the chain between segments) with the recovery
 * scanner, every kept snapshot loaded as the open loads it, and, for a store no process has
 * open, the open itself run in memory (storage/inspect.ts): damaged exactly when the open would
 * refuse or skip something. Read-only; beside a live writer, what it is in the middle of is not damage.
 */
export async function checkStoreFiles(dir: string, onSegment?: (done: number, total: number) => void, reader = new SegmentReader(nodeFileLayer)): Promise<StoreCheck> {
  // Loaded here, not at the top: a plain `tenants list` (and --help) never loads the memory module.
  const { memoryModule } = await import('../../tools/index.js');
  const report = await inspectStore(dir, nodeFileLayer, onSegment, reader, memoryModule);
  const damage: StoreDamage[] = inspectProblems(report);
  if (damage.length > 0) return { ok: false, damage };
  return report.changing ? { ok: true, changing: report.changing } : { ok: true };
}
