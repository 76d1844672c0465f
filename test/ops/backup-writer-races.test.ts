/**
 * A backup read from the files of a store another process holds (the CLI's `backup` beside a
 * running server) races with that writer: closing the store (an idle close, an eviction, a
 * shutdown) cuts the zeros ahead of the active segment's frames, maybe after the backup sized that
 * segment. The backup must still end at a whole frame and restore to the state at its end offset.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { restoreBackup } from '../../storage/backup/restore.js';
import { backupStoreDirectory } from '../../storage/backup/take-backup.js';
import type { FileHandleLike, FileLayer } from '../../storage/io/file-layer.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const dirs: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-races-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The node file layer, running `before()` once, before the first read of a file of `logDir`. */
function layerBeforeFirstLogRead(logDir: string, before: () => Promise<void>): FileLayer {
  const layer = Object.create(nodeFileLayer) as FileLayer;
  let ran: Promise<void> | undefined;
  layer.open = async (file, flags) => {
    const handle = await nodeFileLayer.open(file, flags);
    if (path.dirname(file) !== logDir) return handle;
    return Object.create(handle, {
      read: {
        value: async (buffer: Uint8Array, offset: number, length: number, position: number) => {
          await (ran ??= before());
          return handle.read(buffer, offset, length, position);
        },
      },
    }) as FileHandleLike;
  };
  return layer;
}

test('the writer closing the store (its zero tail cut) while the backup reads its active segment: the backup ends at the last frame and restores', async () => {
  const storeDir = scratch();
  const store = await Store.open({ dir: storeDir, module: counterModule });
  let last = -1;
  for (let i = 0; i < 40; i++) last = (await store.call('bump', { id: `c${i % 7}`, by: i }, testCaller)).offset;
  const stateHash = store.stateHash();
  // The backup has listed and sized the active segment (zeros ahead of the writer included); the close cuts them now.
  const fileLayer = layerBeforeFirstLogRead(path.join(storeDir, 'log'), () => store.close());

  const backupDir = path.join(scratch(), 'backup');
  const report = await backupStoreDirectory(storeDir, { backupDir, module: counterModule, tenant: 'acme', fileLayer });
  expect(report.manifest.endOffset).toBe(last);
  expect(report.manifest.stateHash).toBe(stateHash);
  const restored = await restoreBackup(backupDir, path.join(scratch(), 'restored'), { module: counterModule, expectedTenant: 'acme' });
  expect(restored.stateHash).toBe(stateHash);
});
