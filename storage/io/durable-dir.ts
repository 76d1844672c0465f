/**
 * A directory made durably: a new directory's name is on disk only once its parent is fsync'ed,
 * and its parent's only once the grandparent is (when `mkdir -p` made both). So after the
 * mkdir, every directory from the new one's parent up to `root` is synced, deepest first.
 */
import * as path from 'node:path';
import type { FileLayer } from './file-layer.js';

/** `mkdir -p dir`, durably up to `root` (an existing ancestor of `dir`, itself synced last). */
export async function mkdirDurable(fl: FileLayer, dir: string, root: string): Promise<void> {
  const resolvedRoot = path.resolve(root);
  const resolvedDir = path.resolve(dir);
  if (resolvedDir === resolvedRoot || !resolvedDir.startsWith(resolvedRoot + path.sep)) {
    throw new Error(`mkdirDurable: ${dir} does not lie under ${root}`);
  }
  await fl.mkdirp(resolvedDir);
  for (let parent = path.dirname(resolvedDir); ; parent = path.dirname(parent)) {
    await fl.fsyncDir(parent);
    if (parent === resolvedRoot) return;
  }
}

/** `dir` or its nearest existing ancestor: the directory a `mkdirDurable` of `dir` starts from, and the filesystem it writes to. */
export async function nearestExisting(fl: FileLayer, dir: string): Promise<string> {
  let existing = path.resolve(dir);
  while (!(await fl.exists(existing)) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  return existing;
}

/** fsync the directories of new `files` under `root`, from each file's own up to `root`, deepest first: a new name is durable only once its directory is. */
export async function fsyncDirsUpTo(fl: FileLayer, root: string, files: readonly string[]): Promise<void> {
  const resolvedRoot = path.resolve(root);
  const dirs = new Set<string>([resolvedRoot]);
  for (const file of files) {
    for (let d = path.dirname(path.resolve(file)); d.startsWith(resolvedRoot + path.sep) && !dirs.has(d); d = path.dirname(d)) dirs.add(d);
  }
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await fl.fsyncDir(d);
}
