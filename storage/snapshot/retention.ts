/**
 * Keep the newest `kept` snapshots that have a manifest; delete older ones and unfinished
 * directories older than the newest. Returns the offset of the oldest kept snapshot when
 * `kept` are present: the log up to it is no longer needed.
 */
import type { FileLayer } from '../io/file-layer.js';
import { snapshotsDir } from './manifest.js';
import { listSnapshots } from './reader.js';

export async function applySnapshotRetention(storeDir: string, fl: FileLayer, kept: number): Promise<number | undefined> {
  const refs = await listSnapshots(storeDir, fl); // newest first
  const complete = refs.filter((r) => r.manifest);
  const keep = new Set(complete.slice(0, kept).map((r) => r.dir));
  const newest = complete[0]?.offset ?? -1;
  let removed = 0;
  for (const ref of refs) {
    if (keep.has(ref.dir)) continue;
    if (!ref.manifest && ref.offset >= newest) continue; // may be in progress
    await fl.rmdir(ref.dir);
    removed++;
  }
  if (removed > 0) await fl.fsyncDir(snapshotsDir(storeDir));
  return complete.length >= kept ? complete[kept - 1]!.offset : undefined;
}
