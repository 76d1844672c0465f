/**
 * `store repair`: when a sealed segment is damaged the store refuses to open. Repair cuts
 * the log at the first damage: the damaged segment's rest and every later segment are moved
 * aside (never deleted) into `log/repair-<time>/`, and the report says how many
 * transactions were dropped. Snapshots past the new log end are moved aside too.
 */
import * as path from 'node:path';
import type { FileLayer } from './io/file-layer.js';
import { nodeFileLayer } from './io/node-file-layer.js';
import { findDamage, listSegments } from './log/recovery.js';
import { listSnapshots } from './snapshot/reader.js';

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
  const logDir = path.join(dir, 'log');
  const { damage, lastOffsetSeen } = await findDamage(logDir, fl);
  if (!damage) return { damaged: false, droppedTransactions: 0, movedAside: [] };
  const asideDir = path.join(logDir, `repair-${nowMs}`);
  await fl.mkdirp(asideDir);
  const movedAside: string[] = [];
  const buf = await fl.readFile(damage.file);
  await fl.writeFileDurable(path.join(asideDir, `${path.basename(damage.file)}.from-${damage.position}`), buf.subarray(damage.position));
  movedAside.push(`${damage.file} from byte ${damage.position}`);
  if (damage.position === 0) {
    await fl.unlink(damage.file);
  } else {
    const handle = await fl.open(damage.file, 'r+');
    try {
      await handle.truncate(damage.position);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }
  for (const { file, firstOffset } of await listSegments(logDir, fl)) {
    if (firstOffset <= damage.offset || file === damage.file) continue;
    await fl.rename(file, path.join(asideDir, path.basename(file)));
    movedAside.push(file);
  }
  for (const ref of await listSnapshots(dir, fl)) {
    if (ref.offset >= damage.offset) {
      await fl.rename(ref.dir, path.join(asideDir, `snapshot-${path.basename(ref.dir)}`));
      movedAside.push(ref.dir);
    }
  }
  await fl.fsyncDir(asideDir);
  await fl.fsyncDir(logDir);
  const droppedThrough = Math.max(lastOffsetSeen, damage.offset);
  return {
    damaged: true, file: damage.file, position: damage.position, reason: damage.reason,
    droppedFrom: damage.offset, droppedThrough, droppedTransactions: droppedThrough - damage.offset + 1, movedAside,
  };
}
