/**
 * The LOCK file of a store directory: who has it open. Everything that changes a store's files
 * takes it (Store.open, `store repair`), so no two processes ever write one store.
 *
 * - Taking it is atomic: the file is created with O_EXCL, so of two processes starting at once
 *   exactly one wins (reading "no holder" and then writing the file could let both in).
 * - It names the process as `pid starttime` (the kernel's start time of that pid, from
 *   /proc/PID/stat): after a crash or a reboot the pid may belong to another live process, and
 *   a LOCK naming a pid whose start time differs is stale, not held. (A LOCK of an older version,
 *   a bare pid, counts as held while that pid is alive.)
 * - A stale LOCK is moved aside and the create tried again; a taker that moved a fresh LOCK
 *   aside by mistake (another taker replaced the stale one first) puts it back. An empty LOCK
 *   may be one just created and not yet written: it is stale only if it stays empty.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { MemoryError } from './errors.js';
import type { FileLayer } from './io/file-layer.js';

export const lockFileName = 'LOCK';
/** Rounds of "create, or clear a stale LOCK and create again" before giving up. */
export const lockAttemptsMax = 6;
/**
 * An empty LOCK is looked at again after this (times the round; 1 s in all before it counts as a
 * crash's leftover): its taker may be between create and write, descheduled on a loaded machine.
 */
export const lockWrittenWaitMs = 100;

/** Directories this process holds the lock of (a second open in the same process is refused too). */
const heldDirs = new Set<string>();

/** The start time of `pid` (clock ticks since boot, field 22 of /proc/PID/stat), or undefined where /proc does not say. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function identityOf(pid: number): string {
  const start = processStartTime(pid);
  return start === undefined ? String(pid) : `${pid} ${start}`;
}

/** The pid a LOCK's text names when that process still holds it, else null (stale or unreadable). */
function holderOf(text: string): number | null {
  const [pidText, start] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return null; // no such process
  }
  if (start === undefined) return pid;
  const now = processStartTime(pid);
  return now === undefined || now === start ? pid : null; // another process under a reused pid: stale
}

/** The pid of the process holding `dir`'s lock, or null when none does (no LOCK, or a stale one). */
export function lockHolder(dir: string): number | null {
  try {
    return holderOf(readFileSync(path.join(dir, lockFileName), 'utf8'));
  } catch {
    return null;
  }
}

function heldBy(dir: string, holder: number): MemoryError {
  return holder === process.pid
    ? new MemoryError('conflict', `store ${dir} is already open in this process`)
    : new MemoryError('conflict', `store ${dir} is open in process ${holder}`, 'stop that process first (a LOCK naming a process that has ended is taken over by itself)');
}

/**
 * Take the lock of `dir` (durably), or throw `conflict` naming the process that holds it. Returns
 * the release. `claimed` runs once this process holds the directory (the open removes unfinished
 * snapshots there); if LOCK cannot even be created for want of space (ENOSPC) and no live process
 * holds the directory, it runs first, once, so the space such leftovers hold frees the way.
 */
export async function takeStoreLock(dir: string, fl: FileLayer, claimed?: () => Promise<void>): Promise<() => Promise<void>> {
  const resolved = path.resolve(dir);
  if (heldDirs.has(resolved)) throw heldBy(dir, process.pid);
  const lockPath = path.join(dir, lockFileName);
  const identity = identityOf(process.pid);
  let cleanedForSpace = false;
  for (let attempt = 1; ; attempt++) {
    let created = false;
    try {
      const handle = await fl.open(lockPath, 'wx');
      created = true;
      try {
        const bytes = Buffer.from(identity);
        await handle.writev([bytes], 0);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await fl.fsyncDir(dir);
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        if (created) await fl.unlink(lockPath).catch(() => undefined); // a LOCK this call created and could not finish
        if (code === 'ENOSPC' && claimed !== undefined && !cleanedForSpace && lockHolder(dir) === null) {
          cleanedForSpace = true;
          await claimed();
          continue;
        }
        throw error;
      }
    }
    const text = await fl.readFile(lockPath).then((b) => b.toString('utf8'), () => undefined);
    if (text === undefined) continue; // cleared meanwhile: create again
    const holder = holderOf(text);
    if (holder !== null) throw heldBy(dir, holder);
    if (attempt >= lockAttemptsMax) throw new MemoryError('conflict', `store ${dir}: its LOCK keeps changing; another process is taking it`, 'retry in a moment');
    if (text.trim() === '' && attempt < lockAttemptsMax - 1) {
      // Created and not yet written (its taker is between create and write): look again shortly;
      // still empty after that, it is a crash's leftover and stale.
      await new Promise((resolve) => setTimeout(resolve, lockWrittenWaitMs * attempt));
      continue;
    }
    await clearStaleLock(dir, lockPath, text, fl);
  }
  heldDirs.add(resolved);
  try {
    await claimed?.();
  } catch (error) {
    heldDirs.delete(resolved);
    await fl.unlink(lockPath).catch(() => undefined);
    throw error;
  }
  return async () => {
    heldDirs.delete(resolved);
    await fl.unlink(lockPath).catch(() => undefined);
  };
}

/** Moves the stale LOCK (whose text was `staleText`) aside; one that proves fresher goes back. */
async function clearStaleLock(dir: string, lockPath: string, staleText: string, fl: FileLayer): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${Date.now()}`;
  try {
    await fl.rename(lockPath, aside);
  } catch {
    return; // gone already (another taker cleared it): create again
  }
  const moved = await fl.readFile(aside).then((b) => b.toString('utf8'), () => staleText);
  if (moved !== staleText) {
    // Another taker had replaced the stale LOCK with its own: put that back where it was.
    await fl.rename(aside, lockPath).catch(() => undefined);
    return;
  }
  await fl.unlink(aside).catch(() => undefined);
  await fl.fsyncDir(dir);
}
