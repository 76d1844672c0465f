/**
 * Turn a backup's files into a store directory and prove it with the engine: copy every
 * listed file (hashing each copy against the manifest), fsync the new directories, open the
 * copy with Store.open (the same recovery a server runs) and read its offset and state hash.
 * Used by backup (to learn the state hash at the backup's end) and restore (to prove it).
 */
import * as path from 'node:path';
import { fsyncDirsUpTo } from '../io/durable-dir.js';
import type { FileLayer } from '../io/file-layer.js';
import type { StoreModule } from '../reducer.js';
import { Store } from '../store.js';
import { backupFilePath, type BackupFile } from './backup-manifest.js';
import { copyOpenFile } from './file-copy.js';
import { BackupInvalid } from './verify-backup.js';

export interface ProvenState {
  readonly lastOffset: number;
  readonly stateHash: string;
  readonly tables: Record<string, number>;
  /** The history id the copy opened with (a restore checks it is the one it wrote). */
  readonly historyId: string;
}

export async function copyBackupFiles(
  fl: FileLayer,
  backupDir: string,
  files: readonly BackupFile[],
  targetDir: string,
  onBytes?: (n: number) => void,
): Promise<void> {
  const destinations: string[] = [];
  for (const f of files) {
    const source = backupFilePath(backupDir, f);
    const destination = path.join(targetDir, ...f.path.split('/'));
    destinations.push(destination);
    await fl.mkdirp(path.dirname(destination));
    const handle = await fl.open(source, 'r');
    let copied;
    try {
      copied = await copyOpenFile(fl, handle, f.bytes, destination, onBytes);
    } finally {
      await handle.close();
    }
    // Checked again while copying: the file may have changed since it was verified.
    if (copied.sha256 !== f.sha256) throw new BackupInvalid(source, `SHA-256 changed while it was copied (${copied.sha256}, manifest ${f.sha256})`);
  }
  await fsyncDirsUpTo(fl, targetDir, destinations);
}

/** Open the store in `dir` once, check it ends at `endOffset`, and report its state. */
export async function proveStore(dir: string, module: StoreModule, endOffset: number, fl: FileLayer, onProgress?: (phase: string, done: number, total: number) => void): Promise<ProvenState> {
  const store = await Store.open({ dir, module, fileLayer: fl, ...(onProgress ? { onProgress } : {}) });
  try {
    if (store.lastOffset !== endOffset) {
      throw new BackupInvalid(dir, `the copy opens at offset ${store.lastOffset}, the backup ends at ${endOffset}`);
    }
    return { lastOffset: store.lastOffset, stateHash: store.stateHash(), tables: store.tableCounts(), historyId: store.history.id };
  } finally {
    await store.close();
  }
}
