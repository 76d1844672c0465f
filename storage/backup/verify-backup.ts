/**
 * The restore side of the backup boundary: a backup is trusted only after its manifest
 * parses and every listed file has the listed size and SHA-256. The first problem is
 * reported with the file it concerns, so an operator knows which copy is bad.
 */
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { MemoryError } from '../errors.js';
import type { FileLayer } from '../io/file-layer.js';
import { nodeFileLayer } from '../io/node-file-layer.js';
import { backupFilePath, backupManifestFileName, backupManifestSchema, type BackupManifest } from './backup-manifest.js';
import { hashFile } from '../io/hash-file.js';
import { FileRefused } from '../io/file-refused.js';
import { readBoundedFile } from '../io/read-whole.js';

/** A manifest larger than this is not one of ours (a manifest lists at most backupFilesMax short entries). */
export const backupManifestBytesMax = 32 * 1024 * 1024;

export class BackupInvalid extends Error {
  readonly code = 'backup_invalid';
  constructor(readonly file: string, readonly reason: string) {
    super(`backup does not verify: ${file}: ${reason}`);
    this.name = 'BackupInvalid';
  }
}

export async function readBackupManifest(backupDir: string, fl: FileLayer = nodeFileLayer): Promise<BackupManifest> {
  const file = path.join(backupDir, backupManifestFileName);
  // A wrong path is the operator's slip, not a damaged backup: say so, before looking for the manifest.
  const kind = await stat(backupDir).then((st) => (st.isDirectory() ? 'directory' : 'file'), (error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return 'none';
    throw error;
  });
  if (kind === 'none') throw new MemoryError('not_found', `backup directory ${backupDir} does not exist`, 'check the path: it is the DIR a backup was taken into');
  if (kind === 'file') throw new MemoryError('invalid_argument', `${backupDir} is a file, not a backup directory`, 'check the path: it is the DIR a backup was taken into');
  // The limit holds before reading: a wrong directory's huge file is refused, not loaded.
  const raw = await readBoundedFile(fl, file, backupManifestBytesMax, 'backupManifestBytesMax').catch((error: NodeJS.ErrnoException) => {
    throw new BackupInvalid(file, error instanceof FileRefused ? error.message : `cannot read the manifest (${error.code ?? error.message}); an unfinished backup has none`);
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new BackupInvalid(file, `not JSON: ${(error as Error).message}`);
  }
  const result = backupManifestSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new BackupInvalid(file, `${issue.path.join('.') || '(manifest)'}: ${issue.message}`);
  }
  const manifest = result.data;
  const seen = new Set<string>();
  for (const f of manifest.files) {
    if (seen.has(f.path)) throw new BackupInvalid(file, `lists ${f.path} twice`);
    seen.add(f.path);
  }
  if (manifest.snapshot !== null && manifest.snapshot.offset > manifest.endOffset) {
    throw new BackupInvalid(file, `snapshot offset ${manifest.snapshot.offset} is past the end offset ${manifest.endOffset}`);
  }
  return manifest;
}

/** Check every listed file's size and SHA-256; throws BackupInvalid naming the first file that differs. */
export async function verifyBackupFiles(
  backupDir: string,
  manifest: BackupManifest,
  fl: FileLayer = nodeFileLayer,
  onProgress?: (done: number, total: number) => void,
): Promise<{ files: number; bytes: number }> {
  const total = manifest.files.reduce((n, f) => n + f.bytes, 0);
  let done = 0;
  for (const f of manifest.files) {
    const file = backupFilePath(backupDir, f);
    let actual;
    try {
      actual = await hashFile(fl, file, (n) => onProgress?.((done += n), total));
    } catch (error) {
      throw new BackupInvalid(file, `cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    if (actual.bytes !== f.bytes) throw new BackupInvalid(file, `has ${actual.bytes} bytes, the manifest says ${f.bytes}`);
    if (actual.sha256 !== f.sha256) throw new BackupInvalid(file, `SHA-256 ${actual.sha256} differs from the manifest's ${f.sha256}`);
  }
  onProgress?.(total, total);
  return { files: manifest.files.length, bytes: total };
}
