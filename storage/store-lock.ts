/**
 * The LOCK file of a store directory: the pid of the process that has it open. Everything that
 * changes a store's files takes it (Store.open, `store repair`), so no two processes ever write
 * one store; a LOCK left by a process that died is taken over.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { MemoryError } from './errors.js';
import type { FileLayer } from './io/file-layer.js';

export const lockFileName = 'LOCK';

/** Directories this process holds the lock of (a second open in the same process is refused too). */
const heldDirs = new Set<string>();

/** The pid in the LOCK file when that process is alive (a stale LOCK of a dead process does not count). */
export function lockHolder(dir: string): number | null {
  let text: string;
  try {
    text = readFileSync(path.join(dir, lockFileName), 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

/**
 * Take the lock of `dir` (durably), or throw `conflict` naming the process that holds it. Returns
 * the release. `claimed` runs once no live process holds the directory and before LOCK is
 * written: the open removes unfinished snapshots there, so the space they hold on a full disk
 * does not keep the lock from being written.
 */
export async function takeStoreLock(dir: string, fl: FileLayer, claimed?: () => Promise<void>): Promise<() => Promise<void>> {
  const resolved = path.resolve(dir);
  const holder = lockHolder(dir);
  if (holder !== null && holder !== process.pid) {
    throw new MemoryError('conflict', `store ${dir} is open in process ${holder}`, 'stop that process first');
  }
  if (heldDirs.has(resolved)) throw new MemoryError('conflict', `store ${dir} is already open in this process`);
  heldDirs.add(resolved);
  try {
    await claimed?.();
    await fl.writeFileDurable(path.join(dir, lockFileName), Buffer.from(String(process.pid)));
  } catch (error) {
    heldDirs.delete(resolved);
    throw error;
  }
  return async () => {
    heldDirs.delete(resolved);
    await fl.unlink(path.join(dir, lockFileName)).catch(() => undefined);
  };
}
