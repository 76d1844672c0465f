/**
 * Where a backup directory is written, by `backup` or by a download of one from S3. DIR must be
 * absent or an empty directory, and it is a backup only once whole (scratch-dir.ts):
 *  - DIR absent: the backup is written as DIR.partial-<pid> and renamed into place once its
 *    manifest is in it: until then nothing named DIR exists;
 *  - DIR an empty directory (one the operator made, maybe a mount point, with its owner and mode):
 *    written in DIR/.partial-<pid>, then its `store/` moved up, then its manifest, the commit
 *    point: a DIR without `backup.json` is no backup, and says so.
 * An unfinished one is named `.partial-<pid>` and never mistaken for a backup.
 *
 * Before writing, the partial copies killed runs left are dealt with: DIR's own whose process is
 * gone are removed; one whose process still runs refuses the run (two writers would race for the
 * one name); those of other directories beside DIR are reported, with the command that removes them.
 */
import { readdir, realpath, rm, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { MemoryError } from '../errors.js';
import { mkdirDurable, nearestExisting } from '../io/durable-dir.js';
import type { FileLayer } from '../io/file-layer.js';
import { backupManifestFileName, backupStoreDirName } from './backup-manifest.js';
import { innerScratchDirOf, removeCommand, removeDeadScratches, renameIntoPlace, scratchDirOf } from './scratch-dir.js';

export interface WrittenBackupDir<T> {
  readonly result: T;
  /** Partial copies of earlier runs into the same directory, whose process had died: removed. */
  readonly partialsRemoved: readonly string[];
  /** Partial copies of other directories beside it, whose process has died: left, for the operator to remove. */
  readonly partialsElsewhere: readonly string[];
}

/** The directory a backup into `dir` really writes: a symbolic link's target (rename does not follow links). */
function destinationOf(dir: string): Promise<string> {
  return realpath(dir).catch(() => path.resolve(dir));
}

/** The scratch directories a backup into `dir` by this process may write (the CLI removes them when interrupted). */
export async function backupScratchDirs(dir: string): Promise<string[]> {
  const target = await destinationOf(dir);
  return [scratchDirOf(target, 'backup'), innerScratchDirOf(target, 'backup')];
}

/**
 * Run `write(scratch)` to fill a scratch directory with a backup (its manifest last), then put it
 * in place as `dir`; a failure removes the scratch and leaves `dir` as it was.
 */
export async function writeBackupDir<T>(fl: FileLayer, dir: string, write: (scratch: string) => Promise<T>): Promise<WrittenBackupDir<T>> {
  const target = await destinationOf(dir);
  const leftovers = await removeDeadScratches(target, 'backup');
  const running = leftovers.running[0];
  if (running) {
    throw new MemoryError('conflict', `a backup into ${target} is being written by process ${running.pid} (in ${running.dir})`,
      `wait for it to end, or choose another directory; should process ${running.pid} be no backup (its pid reused after a backup was killed), remove the partial copy: ${removeCommand(running.dir)}`);
  }
  // A killed run into DIR that had moved its store/ up, not yet its manifest, left both: that
  // store/ is its too (its inner scratch, holding the manifest, names it), not the operator's.
  const movedUp = await storeMovedUpBy(target, leftovers.removed.map((l) => l.dir));
  const exists = await refuseOccupied(target);
  const scratch = exists ? innerScratchDirOf(target, 'backup') : scratchDirOf(target, 'backup');
  if (!exists) {
    const parent = path.dirname(target);
    const root = await nearestExisting(fl, parent);
    if (root !== parent) await mkdirDurable(fl, parent, root);
  }
  await fl.mkdirp(scratch);
  let result: T;
  try {
    result = await write(scratch);
    if (exists) {
      await fl.rename(path.join(scratch, backupStoreDirName), path.join(target, backupStoreDirName));
      await fl.fsyncDir(target);
      await fl.rename(path.join(scratch, backupManifestFileName), path.join(target, backupManifestFileName)); // the commit point
    } else {
      await renameIntoPlace(fl, scratch, target);
    }
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    // The directory was empty: a store/ in it now is this backup's, moved up before the failure.
    if (exists) await rm(path.join(target, backupStoreDirName), { recursive: true, force: true });
    throw error;
  }
  if (exists) {
    await fl.fsyncDir(target);
    await fl.rmdir(scratch);
  }
  return { result, partialsRemoved: [...leftovers.removed.map((l) => l.dir), ...movedUp], partialsElsewhere: leftovers.elsewhere.map((l) => l.dir) };
}

/**
 * When `removed` (dead runs' scratches, already removed) held one inside `target`, and `target`
 * holds a store/ without a manifest: remove that store/, which the dead run moved up before it
 * could move its manifest (backup-destination's last two steps), and return it.
 */
async function storeMovedUpBy(target: string, removed: readonly string[]): Promise<string[]> {
  if (!removed.some((dir) => path.dirname(dir) === target)) return [];
  const entries = await readdir(target).catch(() => [] as string[]);
  if (!entries.includes(backupStoreDirName) || entries.includes(backupManifestFileName)) return [];
  const store = path.join(target, backupStoreDirName);
  await rm(store, { recursive: true, force: true });
  return [store];
}

/** `dir` must be absent or an empty directory (true: it exists); what is there otherwise is named (a backup, an unfinished one, a file). */
async function refuseOccupied(dir: string): Promise<boolean> {
  const notDirectory = () => new MemoryError('invalid_argument', `backup directory ${dir} cannot be created: it or a directory above it is a file`,
    'choose a new directory, or an empty one');
  const entries: string[] | undefined = await stat(dir).then(
    (st) => (st.isDirectory() ? readdir(dir) : Promise.reject(notDirectory())),
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error.code === 'ENOTDIR' ? notDirectory() : error;
    },
  );
  if (entries === undefined) return false;
  if (entries.length === 0) return true;
  if (entries.includes(backupManifestFileName)) {
    throw new MemoryError('conflict', `backup directory ${dir} already holds a backup`, 'choose a new directory: a backup never overwrites another');
  }
  if (entries.includes(backupStoreDirName)) {
    throw new MemoryError('conflict', `backup directory ${dir} holds an unfinished backup: its ${backupStoreDirName}/ but no ${backupManifestFileName} (the backup writing it was interrupted)`,
      `remove it and run the backup again: ${removeCommand(dir)}`);
  }
  throw new MemoryError('conflict', `backup directory ${dir} is not empty`, 'choose a new directory, or an empty one');
}
