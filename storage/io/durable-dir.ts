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
