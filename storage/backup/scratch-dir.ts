/**
 * A directory that appears only whole. Its content is written into a scratch directory named for
 * the process writing it, and put in place at the end:
 *  - beside the target, `<target><infix><pid>`, renamed onto it (rename(2) replaces an absent or
 *    empty directory in one step), then the parent fsync'ed: a new name is durable only once its
 *    directory is;
 *  - or inside a target that already exists, `<target>/<infix><pid>` (a backup into an empty
 *    directory the operator made: its mount, owner and mode stay), its entries then renamed up
 *    one by one, the one that marks the whole last (backup-destination.ts).
 * So an interrupted backup, download or restore never leaves a half-written directory under the
 * name a reader trusts: a failure removes the scratch, the CLI removes it on SIGINT/SIGTERM, and
 * one a killed process left (SIGKILL, the machine went down) is known by its name: the run after
 * it finds it, with the pid that wrote it.
 */
import { readdir, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { MemoryError } from '../errors.js';
import type { FileLayer } from '../io/file-layer.js';
import { processRuns } from '../io/process-runs.js';
import { shellWord } from '../shell-word.js';

/** What the scratch is for: a backup directory (taken, or downloaded from S3), or a restored store. */
export type ScratchUse = 'backup' | 'restore';
const scratchInfixes: Record<ScratchUse, string> = { backup: '.partial-', restore: '.restoring-' };

/** Where this process writes `target` beside it, before renaming it into place. */
export function scratchDirOf(target: string, use: ScratchUse, pid = process.pid): string {
  return `${path.resolve(target)}${scratchInfixes[use]}${pid}`;
}

/** Where this process writes into `target` (a directory that exists), before moving the entries up. */
export function innerScratchDirOf(target: string, use: ScratchUse, pid = process.pid): string {
  return path.join(path.resolve(target), `${scratchInfixes[use]}${pid}`);
}

export interface Leftover {
  /** The scratch directory. */
  readonly dir: string;
  /** The directory it was to become, or to fill. */
  readonly target: string;
  /** The process that wrote it. */
  readonly pid: number;
  /** That pid names a running process (the writer still at work, or another process under a reused pid). */
  readonly running: boolean;
}

/** The scratch directory `dir` is, by its name, or undefined when it is none. */
export function leftoverOf(dir: string, use: ScratchUse): Leftover | undefined {
  const resolved = path.resolve(dir);
  const name = path.basename(resolved);
  const infix = scratchInfixes[use];
  const at = name.lastIndexOf(infix);
  const digits = at >= 0 ? name.slice(at + infix.length) : '';
  const pid = /^\d{1,10}$/.test(digits) ? Number(digits) : 0;
  if (pid <= 0) return undefined;
  // Named by its infix alone: a scratch inside its target.
  const target = at === 0 ? path.dirname(resolved) : path.join(path.dirname(resolved), name.slice(0, at));
  // One named with this process's pid is a previous process's (under the same pid): not running.
  return { dir: resolved, target, pid, running: pid !== process.pid && processRuns(pid) };
}

/** The scratch directories of `use` in `dir`: beside their targets there, or inside `dir` itself. */
async function leftoversIn(dir: string, use: ScratchUse): Promise<Leftover[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.flatMap((name) => leftoverOf(path.join(dir, name), use) ?? []);
}

/** The scratch directories of runs into `target` (beside it and inside it), and apart those of other targets beside it. */
export async function leftoversAround(target: string, use: ScratchUse): Promise<{ mine: Leftover[]; elsewhere: Leftover[] }> {
  const resolved = path.resolve(target);
  const beside = await leftoversIn(path.dirname(resolved), use);
  const mine = [...beside, ...(await leftoversIn(resolved, use))].filter((l) => l.target === resolved);
  return { mine, elsewhere: beside.filter((l) => l.target !== resolved) };
}

/**
 * Remove the scratch directories dead runs into `target` left (up to a whole store each, and
 * nothing else removes them). One whose process still runs is another run's work in progress,
 * left alone. Dead ones of other targets beside it are returned too, left alone: whether they are
 * garbage is for their own next run to say.
 */
export async function removeDeadScratches(target: string, use: ScratchUse): Promise<{ removed: Leftover[]; running: Leftover[]; elsewhere: Leftover[] }> {
  const { mine, elsewhere } = await leftoversAround(target, use);
  const removed = mine.filter((l) => !l.running);
  for (const l of removed) await rm(l.dir, { recursive: true, force: true });
  return { removed, running: mine.filter((l) => l.running), elsewhere: elsewhere.filter((l) => !l.running) };
}

/** Rename a finished scratch onto `target` (absent or empty) and fsync their parent. */
export async function renameIntoPlace(fl: FileLayer, scratch: string, target: string): Promise<void> {
  await fl.rename(scratch, target).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
    throw new MemoryError('conflict', `${target} was filled while it was written (by another process): nothing was put in its place`,
      'choose a new directory, or an empty one');
  });
  await fl.fsyncDir(path.dirname(target));
}

/** The shell command that removes `dir` (quoted for a POSIX shell), for a hint. */
export function removeCommand(dir: string): string {
  return `rm -rf -- ${shellWord(dir)}`;
}

