/** mkdirDurable (storage/io/durable-dir.ts): the directories made, and every parent up to the root synced, deepest first. */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { mkdirDurable } from '../../storage/io/durable-dir.js';
import { NodeFileLayer } from '../../storage/io/node-file-layer.js';

class SyncRecordingLayer extends NodeFileLayer {
  readonly synced: string[] = [];
  override async fsyncDir(dir: string): Promise<void> {
    this.synced.push(dir);
    await super.fsyncDir(dir);
  }
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'ioboxx-durable-dir-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));

test('makes the missing levels and syncs each parent from the deepest up to the root', async () => {
  const fl = new SyncRecordingLayer();
  await mkdirDurable(fl, path.join(root, 'a', 'b'), root);
  expect((await stat(path.join(root, 'a', 'b'))).isDirectory()).toBe(true);
  expect(fl.synced).toEqual([path.join(root, 'a'), root]);
});

test('refuses a directory that does not lie under the root', async () => {
  await expect(mkdirDurable(new SyncRecordingLayer(), path.join(root, '..', 'elsewhere'), root)).rejects.toThrow('does not lie under');
  await expect(mkdirDurable(new SyncRecordingLayer(), root, root)).rejects.toThrow('does not lie under');
});
