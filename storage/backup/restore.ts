/**
 * Restore a backup into a new store directory. Nothing is trusted before it is checked:
 *  1. the manifest parses, and the target's filesystem has room for it (backup-space.ts: about
 *     twice the backup's size; else MemoryError 'unavailable' with bytes needed vs free);
 *  2. every listed file has its size and SHA-256 (else BackupInvalid naming the file); nothing
 *     is written before this;
 *  3. the files are copied into a scratch directory beside the target (hashed again on the way);
 *  4. the copy is opened with Store.open: it must end at the manifest's offset with the
 *     manifest's state hash;
 *  5. the copy gets a new history id (history.ts) naming the backup's store as parent, forked at
 *     the backup's end offset: the offsets it gives from there are not the ones the lost store gave;
 *     its copied snapshot manifests record the new history, not the parent's (history-evidence.ts);
 *  6. only then is the scratch directory renamed to the target (and its parent fsync'ed), so a
 *     failed restore never leaves a half-restored store where a server would open it; the
 *     scratch copy a killed restore into the same target left is removed first (scratch-dir.ts).
 */
import { readdir, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { MemoryError } from '../errors.js';
import { nearestExisting } from '../io/durable-dir.js';
import type { FileLayer } from '../io/file-layer.js';
import { statfsFreeBytes, type FreeBytesOf } from '../io/free-bytes.js';
import { nodeFileLayer } from '../io/node-file-layer.js';
import type { StoreModule } from '../reducer.js';
import { forkedHistory, writeStoreHistory, type StoreHistory } from '../history.js';
import { recordHistoryInManifests } from '../snapshot/writer.js';
import type { BackupManifest } from './backup-manifest.js';
import { backupSpaceExhausted, ensureBackupSpace } from './backup-space.js';
import { copyBackupFiles, proveStore } from './prove-copy.js';
import { removeDeadScratches, renameIntoPlace, scratchDirOf } from './scratch-dir.js';
import { BackupInvalid, readBackupManifest, verifyBackupFiles } from './verify-backup.js';

export interface RestoreOptions {
  readonly module: StoreModule;
  /** When set, a backup of another tenant is refused (one tenant's memory never lands in another's store). */
  readonly expectedTenant?: string;
  readonly fileLayer?: FileLayer;
  /** Free space at the target, checked before copying (backup-space.ts; tests play a full disk). */
  readonly freeBytesOf?: FreeBytesOf;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** Clock for the new history's createdAtMs (tests pass a fixed one). */
  readonly nowMs?: number;
}

export interface RestoreReport {
  readonly backupDir: string;
  readonly targetDir: string;
  readonly tenant: string | null;
  readonly endOffset: number;
  readonly stateHash: string;
  /** True: the restored store opened at endOffset with exactly the manifest's state hash. */
  readonly stateHashVerified: true;
  readonly files: number;
  readonly bytes: number;
  /** The restored store's new history: its parent (the backup's store, when the backup names it) and the fork offset. */
  readonly history: StoreHistory;
}

export async function restoreBackup(backupDir: string, targetDir: string, options: RestoreOptions): Promise<RestoreReport> {
  const fl = options.fileLayer ?? nodeFileLayer;
  const source = path.resolve(backupDir);
  const target = path.resolve(targetDir);
  const manifest = await readBackupManifest(source, fl);
  if (options.expectedTenant !== undefined && manifest.tenant !== null && manifest.tenant !== options.expectedTenant) {
    throw new MemoryError('forbidden', `backup ${source} is of tenant ${manifest.tenant}, not ${options.expectedTenant}`,
      'restore a backup of the same tenant');
  }
  await assertEmptyOrMissing(fl, target);
  const backupBytes = manifest.files.reduce((n, f) => n + f.bytes, 0);
  await ensureBackupSpace(await nearestExisting(fl, path.dirname(target)), backupBytes, options.freeBytesOf ?? statfsFreeBytes, 'restore');
  const checked = await verifyBackupFiles(source, manifest, fl, (d, t) => options.onProgress?.('verify', d, t));

  const scratch = scratchDirOf(target, 'restore');
  // Made only now, the backup verified: a refused restore leaves no directory behind.
  await fl.mkdirp(path.dirname(target));
  await removeDeadScratches(target, 'restore');
  try {
    let done = 0;
    await copyBackupFiles(fl, source, manifest.files, scratch, (n) => options.onProgress?.('restore', (done += n), checked.bytes));
    // Before the proof opens it: the open would otherwise adopt an id with no parent.
    const history = forkedHistory(manifest.history, manifest.endOffset, options.nowMs ?? Date.now());
    await fl.mkdirp(scratch); // an empty store's backup lists no file
    await writeStoreHistory(scratch, history, fl);
    await recordHistoryInManifests(scratch, history, fl);
    const proven = await proveStore(scratch, options.module, manifest.endOffset, fl, options.onProgress);
    if (proven.stateHash !== manifest.stateHash) {
      throw new BackupInvalid(source, `restored state hash ${proven.stateHash} at offset ${manifest.endOffset} differs from the manifest's ${manifest.stateHash}`);
    }
    if (proven.historyId !== history.id) throw new MemoryError('internal', `the restored copy opened with history ${proven.historyId}, not the ${history.id} written for it`);
    await renameIntoPlace(fl, scratch, target); // onto the empty target checked above
    return report(source, target, manifest, checked, history);
  } catch (error) {
    await rm(scratch, { recursive: true, force: true });
    throw backupSpaceExhausted(target, error, 'restore') ?? error;
  }
}

async function assertEmptyOrMissing(fl: FileLayer, dir: string): Promise<void> {
  if (!(await fl.exists(dir))) return;
  if ((await readdir(dir)).length > 0) {
    throw new MemoryError('conflict', `restore target ${dir} is not empty`, 'restore into a new or empty directory; move the old store aside first');
  }
}

function report(backupDir: string, targetDir: string, manifest: BackupManifest, checked: { files: number; bytes: number }, history: StoreHistory): RestoreReport {
  return {
    backupDir, targetDir, tenant: manifest.tenant, endOffset: manifest.endOffset, stateHash: manifest.stateHash,
    stateHashVerified: true, files: checked.files, bytes: checked.bytes, history,
  };
}
