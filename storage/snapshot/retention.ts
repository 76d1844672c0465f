/**
 * Which snapshot directories stay. Both functions expect the caller to hold the store's lock
 * and to write no snapshot meanwhile (the Store runs them at open and inside its one snapshot
 * write at a time): a directory without a manifest file is then nobody's work in progress.
 */
import * as path from 'node:path';
import type { FileLayer } from '../io/file-layer.js';
import { manifestFileName, snapshotsDir } from './manifest.js';
import { listSnapshots, type SnapshotRef } from './reader.js';

/** No manifest file at all: a write that stopped before its commit point (a crash, or a failure it could not clean up). */
async function unfinished(ref: SnapshotRef, fl: FileLayer): Promise<boolean> {
  // A manifest that cannot even be looked for (a file in the directory's place: ENOTDIR) is
  // damage, kept for the operator as a damaged manifest is, not a write in progress to remove.
  return !ref.manifest && !(await fl.exists(path.join(ref.dir, manifestFileName)).catch(() => true));
}

/** Delete the unfinished snapshot directories: they are never loaded, and on a full disk they hold the space the store needs. */
export async function removeUnfinishedSnapshots(storeDir: string, fl: FileLayer): Promise<void> {
  let removed = 0;
  for (const ref of await listSnapshots(storeDir, fl)) {
    if (!(await unfinished(ref, fl))) continue;
    await fl.rmdir(ref.dir);
    removed++;
  }
  if (removed > 0) await fl.fsyncDir(snapshotsDir(storeDir));
}

/**
 * Keep the newest `kept` snapshots that have a manifest and are not known to be damaged
 * (`damaged`: the directories the open found invalid and skipped); delete the older ones,
 * the damaged ones among them, and every unfinished directory. A damaged one (its manifest is
 * there but invalid) newer than the newest complete one stays for the operator: the open reports
 * it as skipped. Returns the offset of the oldest kept snapshot when `kept` are present: the log
 * up to it is no longer needed, so it must be one that verified.
 */
export async function applySnapshotRetention(storeDir: string, fl: FileLayer, kept: number, damaged: ReadonlySet<string> = new Set()): Promise<number | undefined> {
  const refs = await listSnapshots(storeDir, fl); // newest first
  const complete = refs.filter((r) => r.manifest && !damaged.has(r.dir));
  const keep = new Set(complete.slice(0, kept).map((r) => r.dir));
  const newest = complete[0]?.offset ?? -1;
  let removed = 0;
  for (const ref of refs) {
    if (keep.has(ref.dir)) continue;
    if (!ref.manifest && ref.offset >= newest && !(await unfinished(ref, fl))) continue;
    await fl.rmdir(ref.dir);
    removed++;
  }
  if (removed > 0) await fl.fsyncDir(snapshotsDir(storeDir));
  return complete.length >= kept ? complete[kept - 1]!.offset : undefined;
}
