/**
 * The LOCK file of a store directory: who has it open. Everything that changes a store's files
 * takes it (Store.open, `store repair`), so no two processes ever write one store.
 *
 * - Taking it is atomic and whole: the process writes its identity into a file of its own, syncs
 *   it, then links it as LOCK. A link never replaces a name (EEXIST), so of several takers exactly
 *   one wins, and a LOCK is never seen empty or half-written.
 * - It names the process as `pid starttime` (the kernel's start time of that pid, from
 *   /proc/PID/stat): after a crash or a reboot the pid may belong to another live process, and
 *   a LOCK naming a pid whose start time differs is stale, not held. So is one naming a zombie
 *   (a process that ended and is not yet reaped). (A LOCK of an older version, a bare pid, counts
 *   as held while that pid is alive.)
 * - A stale LOCK is removed only by the process holding LOCK.clearing (taken the same way): with
 *   one clearer at a time, none can remove a LOCK another taker has just linked in its place.
 * - An older version created LOCK empty and then wrote it: an empty LOCK is stale only if it
 *   stays empty.
 */
import * as path from 'node:path';
import { MemoryError, StoreFileNotWritten, StoreLockHeld } from './errors.js';
import type { FileLayer } from './io/file-layer.js';
import { FileRefused } from './io/file-refused.js';
import { readBoundedFile, readSmallFileSync } from './io/read-whole.js';
import { processRuns, processStartTime } from './io/process-runs.js';

export const lockFileName = 'LOCK';
/** Held while a stale LOCK is removed (see the top of this file). */
const clearingFileName = 'LOCK.clearing';
/** A LOCK this code writes holds `pid starttime` (under 40 bytes): a larger file is not a lock. */
export const lockFileBytesMax = 256;
/** Rounds of "link, or clear a stale LOCK and link again" before giving up. */
export const lockAttemptsMax = 6;
/** How long a taker waits while another process clears a stale LOCK (it takes a few fsyncs). */
const clearingWaitMs = 50;
/**
 * An empty LOCK (an older version's, see the top) is looked at again after this (times the round;
 * 1 s in all before it counts as a crash's leftover): its taker may be between create and write.
 */
export const lockWrittenWaitMs = 100;

/** Directories this process holds the lock of (a second open in the same process is refused too). */
const heldDirs = new Set<string>();

export function identityOf(pid: number): string {
  const start = processStartTime(pid);
  return start === undefined ? String(pid) : `${pid} ${start}`;
}

/** The pid a LOCK's text names when that process still holds it, else null (stale or unreadable). */
export function holderOf(text: string): number | null {
  const [pidText, start] = text.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (!processRuns(pid)) return null;
  if (start === undefined) return pid;
  const now = processStartTime(pid);
  return now === undefined || now === start ? pid : null; // another process under a reused pid: stale
}

/** The pid of the process holding `dir`'s lock, or null when none does (no LOCK, or a stale one). */
export function lockHolder(dir: string): number | null {
  try {
    return holderOf(readSmallFileSync(path.join(dir, lockFileName), lockFileBytesMax, 'lockFileBytesMax').toString('utf8'));
  } catch {
    return null;
  }
}

/**
 * Take the lock of `dir` (durably), or throw `conflict` naming the process that holds it. Returns
 * the release. `claimed` runs once this process holds the directory (the open removes unfinished
 * snapshots there); if LOCK cannot even be created for want of space (ENOSPC) and no live process
 * holds the directory, it runs first, once, so the space such leftovers hold frees the way.
 */
export async function takeStoreLock(dir: string, fl: FileLayer, claimed?: () => Promise<void>): Promise<() => Promise<void>> {
  const resolved = path.resolve(dir);
  if (heldDirs.has(resolved)) throw new StoreLockHeld(dir, process.pid);
  const lockPath = path.join(dir, lockFileName);
  let cleanedForSpace = false;
  for (let attempt = 1; ; attempt++) {
    try {
      await linkOwnFile(dir, lockFileName, fl);
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        if (code === 'ENOSPC' && claimed !== undefined && !cleanedForSpace && lockHolder(dir) === null) {
          cleanedForSpace = true;
          await claimed();
          continue;
        }
        if (code === 'ENOSPC' || code === 'EDQUOT') {
          // A disk full to its last page: say so, and how to look at the store meanwhile.
          throw new StoreFileNotWritten(`store ${dir} cannot be opened: its ${lockFileName} file cannot be written`, error,
            `free disk space on the store's filesystem, then open it again (\`ioboxx-memory store verify --read-only ${dir}\` checks it meanwhile, changing no file)`);
        }
        throw error;
      }
    }
    const text = await readLockText(dir, lockPath, fl);
    const holder = text === undefined ? null : holderOf(text);
    if (holder !== null) throw new StoreLockHeld(dir, holder);
    if (attempt >= lockAttemptsMax) throw new MemoryError('conflict', `store ${dir}: its LOCK keeps changing; another process is taking it`, 'retry in a moment');
    if (text === undefined) continue; // cleared meanwhile: link again
    if (text.trim() === '' && attempt < lockAttemptsMax - 1) {
      // An older version's taker between create and write: look again shortly; still empty
      // after that, it is a crash's leftover and stale.
      await sleep(lockWrittenWaitMs * attempt);
      continue;
    }
    await clearStaleLock(dir, text, fl);
  }
  heldDirs.add(resolved);
  const release = async () => {
    heldDirs.delete(resolved);
    // Ours only: when the directory was deleted and another store put in its place (a restore) while
    // this one was open, the LOCK there is another process's, and removing it would let two writers in.
    const text = await readLockText(dir, lockPath, fl).catch(() => undefined);
    if (text?.trim() === identityOf(process.pid)) await fl.unlink(lockPath).catch(() => undefined);
  };
  try {
    await removeLeftoverOwnFiles(dir, fl);
    await claimed?.();
  } catch (error) {
    await release();
    throw error;
  }
  return release;
}

/** Tells apart the own files of one process (a LOCK and a LOCK.clearing may be in the making at once). */
let ownFilesMade = 0;

/**
 * Write this process's identity into a file of its own, sync it, and link it as `name` in `dir`:
 * the name appears whole or not at all. Throws EEXIST when `name` exists.
 */
async function linkOwnFile(dir: string, name: string, fl: FileLayer): Promise<void> {
  const own = path.join(dir, `${name}.${process.pid}-${ownFilesMade++}`);
  try {
    const handle = await fl.open(own, 'wx');
    try {
      await handle.writev([Buffer.from(identityOf(process.pid))], 0);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await fl.link(own, path.join(dir, name));
  } finally {
    await fl.unlink(own).catch(() => undefined); // a half-written one too: it holds space a full disk lacks
  }
  await fl.fsyncDir(dir);
}

/** Files `linkOwnFile` names `LOCK.PID-N` (and `LOCK.clearing.PID-N`), and an older version's `LOCK.stale-PID-TIME`. */
const ownFilePattern = /^LOCK\.(?:clearing\.)?(?:stale-)?(\d+)-\d+$/;

/** Such files of processes that ended between writing and removing them (a crash): nothing reads them. */
async function removeLeftoverOwnFiles(dir: string, fl: FileLayer): Promise<void> {
  for (const name of await fl.readdir(dir)) {
    const pid = ownFilePattern.exec(name)?.[1];
    if (pid !== undefined && holderOf(pid) === null) await fl.unlink(path.join(dir, name)).catch(() => undefined);
  }
}

/**
 * Remove the stale LOCK (whose text was `staleText`), holding LOCK.clearing meanwhile. When
 * another process holds LOCK.clearing, wait a moment instead: the caller then tries to link again.
 */
async function clearStaleLock(dir: string, staleText: string, fl: FileLayer): Promise<void> {
  const clearingPath = path.join(dir, clearingFileName);
  try {
    await linkOwnFile(dir, clearingFileName, fl);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const clearer = await readLockText(dir, clearingPath, fl);
    // A clearer that ended mid-clear (a crash) left it: remove it. Else let the clearer finish.
    if (clearer !== undefined && clearer.trim() !== '' && holderOf(clearer) === null) await fl.unlink(clearingPath).catch(() => undefined);
    else await sleep(clearingWaitMs);
    return;
  }
  try {
    // Only the holder of LOCK.clearing removes a LOCK, and no LOCK is linked while one exists:
    // a LOCK with the stale text now is the very one judged stale.
    if ((await readLockText(dir, path.join(dir, lockFileName), fl)) === staleText) await fl.unlink(path.join(dir, lockFileName)).catch(() => undefined);
  } finally {
    await fl.unlink(clearingPath).catch(() => undefined);
    await fl.fsyncDir(dir);
  }
}

/**
 * The text of a LOCK (or LOCK.clearing), or undefined when it is gone (another process removed
 * it meanwhile). Anything this code does not make there is refused, naming it: a directory or a
 * FIFO (the file layer opens regular files only), a file over lockFileBytesMax, one that cannot
 * be read. Before, such a LOCK kept the taker linking and reading for ever.
 */
async function readLockText(dir: string, file: string, fl: FileLayer): Promise<string | undefined> {
  try {
    return (await readBoundedFile(fl, file, lockFileBytesMax, 'lockFileBytesMax')).toString('utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    const why = error instanceof FileRefused ? error.message : `${path.basename(file)} cannot be read (${code ?? (error as Error).message})`;
    throw new MemoryError('conflict', `store ${dir} cannot be opened: ${why}; ioboxx-memory makes ${path.basename(file)} as a small file naming its process`,
      `move ${file} away once no process uses this store, then open it again`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
