/**
 * `store repair`: when the log is damaged the store refuses to open. Repair cuts the log at the
 * first damage: the damaged segment's rest and every later segment are moved aside (never
 * deleted) into `log/repair-<time>/`, and the report says how many transactions were dropped.
 * Snapshots past the new log end, and a clean-close checkpoint that no longer describes the
 * log, are moved aside too: both are evidence of acknowledged transactions the log lost, and
 * the open refuses while they stay. Repair holds the store's LOCK: never beside a live writer.
 */
import * as path from 'node:path';
import type { FileLayer } from './io/file-layer.js';
import { nodeFileLayer } from './io/node-file-layer.js';
import { checkpointFileName, readCheckpoint } from './log/checkpoint.js';
import { findDamage, keepAsideAndCut, listSegments } from './log/recovery.js';
import { listSnapshots } from './snapshot/reader.js';
import { takeStoreLock } from './store-lock.js';

export interface RepairReport {
  readonly damaged: boolean;
  readonly file?: string;
  readonly position?: number;
  readonly reason?: string;
  /** Offsets dropped: [first, last], and their count. */
  readonly droppedFrom?: number;
  readonly droppedThrough?: number;
  readonly droppedTransactions: number;
  readonly movedAside: string[];
}


export async function repairStore(dir: string, nowMs: number, fl: FileLayer = nodeFileLayer): Promise<RepairReport> {
  const release = await takeStoreLock(dir, fl);
  try {
    return await repairLocked(dir, nowMs, fl);
  } finally {
    await release();
  }
}

async function repairLocked(dir: string, nowMs: number, fl: FileLayer): Promise<RepairReport> {
  const logDir = path.join(dir, 'log');
  const { damage, lastOffsetSeen, endBeforeDamage } = await findDamage(logDir, fl);
  // With no log at all there is no end to be past (the open loads the newest snapshot alone).
  const logExists = (await listSegments(logDir, fl)).length > 0;
  const snapshotsPast = logExists ? (await listSnapshots(dir, fl)).filter((ref) => ref.offset > endBeforeDamage) : [];
  const checkpoint = logExists ? await checkpointOffset(logDir, fl) : undefined;
  // A checkpoint past the end is lost work; after a cut it no longer describes the log either.
  const checkpointStale = checkpoint !== undefined && (damage !== undefined || checkpoint > endBeforeDamage);
  if (!damage && snapshotsPast.length === 0 && !checkpointStale) return { damaged: false, droppedTransactions: 0, movedAside: [] };

  const asideDir = path.join(logDir, `repair-${nowMs}`);
  await fl.mkdirp(asideDir);
  const movedAside: string[] = [];
  if (damage) {
    const keptAt = path.join(asideDir, `${path.basename(damage.file)}.from-${damage.position}`);
    // From byte 0 the whole entry goes aside: a rename, unread (it may not even be a file).
    if (damage.position === 0) await fl.rename(damage.file, keptAt);
    else await keepAsideAndCut(fl, damage.file, await fl.readFile(damage.file), damage.position, keptAt);
    movedAside.push(`${damage.file} from byte ${damage.position}`);
    // Every segment after the damaged one in log order (a foreign one may carry any offset).
    const segments = await listSegments(logDir, fl);
    const damagedAt = segments.findIndex((segment) => segment.file === damage.file);
    for (const { file } of damagedAt < 0 ? [] : segments.slice(damagedAt + 1)) {
      await fl.rename(file, path.join(asideDir, path.basename(file)));
      movedAside.push(file);
    }
  }
  for (const ref of snapshotsPast) {
    await fl.rename(ref.dir, path.join(asideDir, `snapshot-${path.basename(ref.dir)}`));
    movedAside.push(ref.dir);
  }
  if (checkpointStale) {
    await fl.rename(path.join(logDir, checkpointFileName), path.join(asideDir, checkpointFileName));
    movedAside.push(path.join(logDir, checkpointFileName));
  }
  await fl.fsyncDir(asideDir);
  await fl.fsyncDir(logDir);
  await fl.fsyncDir(path.join(dir, 'snapshots')).catch(() => undefined); // none when the store never took one

  // What the log, the snapshots and the checkpoint show was there: everything past the new end is gone.
  const droppedThrough = Math.max(lastOffsetSeen, checkpoint ?? -1, ...snapshotsPast.map((ref) => ref.offset));
  const droppedTransactions = Math.max(0, droppedThrough - endBeforeDamage);
  const where = damage ?? (await logEnd(logDir, fl));
  const reason = damage?.reason ?? `the log ends at offset ${endBeforeDamage}, but ${snapshotsPast.length > 0 ? `snapshot ${path.basename(snapshotsPast[0]!.dir)}` : 'the clean-close checkpoint'} shows offsets through ${droppedThrough} were acknowledged`;
  return {
    damaged: true, file: where.file, position: where.position, reason,
    ...(droppedTransactions > 0 ? { droppedFrom: endBeforeDamage + 1, droppedThrough } : {}),
    droppedTransactions, movedAside,
  };
}

/** The clean-close checkpoint's offset; an unreadable one counts as none, as the open counts it. */
async function checkpointOffset(logDir: string, fl: FileLayer): Promise<number | undefined> {
  const checkpoint = await readCheckpoint(logDir, fl);
  return checkpoint === 'unreadable' ? undefined : checkpoint?.offset;
}

/** The last segment's file and size: where a log that lost its tail now ends. */
async function logEnd(logDir: string, fl: FileLayer): Promise<{ file: string; position: number }> {
  const last = (await listSegments(logDir, fl)).at(-1);
  if (!last) return { file: logDir, position: 0 };
  const handle = await fl.open(last.file, 'r');
  try {
    return { file: last.file, position: await handle.size() };
  } finally {
    await handle.close();
  }
}
