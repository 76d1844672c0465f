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
import { backupFilePath, backupManifestFileName, backupManifestSchema, backupStoreDirName, manifestDigestProblem, type BackupManifest } from './backup-manifest.js';
import { leftoverOf, leftoversAround, removeCommand } from './scratch-dir.js';
import { hashFile } from '../io/hash-file.js';
import { FileRefused } from '../io/file-refused.js';
import { readBoundedFile } from '../io/read-whole.js';

/** A manifest larger than this is not one of ours (a manifest lists at most backupFilesMax short entries). */
export const backupManifestBytesMax = 32 * 1024 * 1024;

export class BackupInvalid extends Error {
  readonly code = 'backup_invalid';
  constructor(readonly file: string, readonly reason: string, readonly hint?: string) {
    super(`backup does not verify: ${file}: ${reason}`);
    this.name = 'BackupInvalid';
  }
}

const damagedManifestHint = 'this copy of the backup is damaged: restore from another copy of it (one uploaded with --upload: restore --from-s3 NAME), or from another backup';

export async function readBackupManifest(backupDir: string, fl: FileLayer = nodeFileLayer): Promise<BackupManifest> {
  const file = path.join(backupDir, backupManifestFileName);
  // A wrong path is the operator's slip, not a damaged backup: say so, before looking for the manifest.
  const kind = await stat(backupDir).then((st) => (st.isDirectory() ? 'directory' : 'file'), (error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return 'none';
    throw error;
  });
  if (kind === 'none') throw new MemoryError('not_found', `backup directory ${backupDir} does not exist`, await absentHint(backupDir));
  if (kind === 'file') throw new MemoryError('invalid_argument', `${backupDir} is a file, not a backup directory`, 'check the path: it is the DIR a backup was taken into');
  // The limit holds before reading: a wrong directory's huge file is refused, not loaded.
  const raw = await readBoundedFile(fl, file, backupManifestBytesMax, 'backupManifestBytesMax').catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw await manifestMissing(backupDir, file);
    throw new BackupInvalid(file, error instanceof FileRefused ? error.message : `cannot read the manifest (${error.code ?? error.message})`);
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new BackupInvalid(file, `not JSON: ${(error as Error).message}`, damagedManifestHint);
  }
  // Before anything in it is believed: a damaged hash or path would blame the file it names.
  const digestProblem = manifestDigestProblem(parsed);
  if (digestProblem !== undefined) throw new BackupInvalid(file, digestProblem, damagedManifestHint);
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

const checkPathHint = 'check the path: it is the DIR a backup was taken into';

/** A DIR that does not exist: when a backup into it left its partial copy beside it, say so. */
async function absentHint(backupDir: string): Promise<string> {
  const { mine } = await leftoversAround(backupDir, 'backup');
  if (mine.length === 0) return checkPathHint;
  const dirs = mine.map((l) => l.dir).join(', ');
  return mine.some((l) => l.running)
    ? `${dirs} is a backup into it still being written: restore once it has finished`
    : `${dirs} is the partial copy an interrupted backup into it left, not a backup: run the backup again (that removes it), then restore`;
}

/** No manifest: say what the directory is instead (the manifest is written last, so an interrupted backup has none). */
async function manifestMissing(backupDir: string, file: string): Promise<BackupInvalid> {
  const again = `take the backup again, and restore from that; remove this one: ${removeCommand(backupDir)}`;
  const partial = leftoverOf(backupDir, 'backup');
  if (partial) {
    return new BackupInvalid(file, `missing: ${backupDir} is the partial copy of a backup into ${partial.target} by process ${partial.pid}, ${partial.running ? 'which is still writing it' : 'which was interrupted'}; it is not a backup`,
      partial.running ? `wait for that backup to finish, then restore from ${partial.target}` : again);
  }
  const writer = (await leftoversAround(backupDir, 'backup')).mine[0];
  if (writer) {
    return new BackupInvalid(file, `missing: ${backupDir} is an unfinished backup: process ${writer.pid} ${writer.running ? 'is still writing it' : 'was interrupted writing it'} (its partial copy: ${writer.dir})`,
      writer.running ? 'wait for that backup to finish, then restore' : again);
  }
  const hasStore = await stat(path.join(backupDir, backupStoreDirName)).then(() => true, () => false);
  if (!hasStore) return new BackupInvalid(file, `missing: ${backupDir} is not a backup directory (no ${backupManifestFileName}, no ${backupStoreDirName}/)`, checkPathHint);
  return new BackupInvalid(file, `missing: ${backupDir} is an unfinished backup (its ${backupStoreDirName}/ was written, but not its manifest, which is written last: the backup was interrupted)`, again);
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
      const code = (error as NodeJS.ErrnoException).code;
      throw new BackupInvalid(file, code === 'ENOENT' ? `missing: the manifest lists it (${f.bytes} bytes), so the backup is incomplete` : `cannot read (${code ?? (error as Error).message})`);
    }
    if (actual.bytes !== f.bytes) throw new BackupInvalid(file, `has ${actual.bytes} bytes, the manifest says ${f.bytes}`);
    if (actual.sha256 !== f.sha256) throw new BackupInvalid(file, `SHA-256 ${actual.sha256} differs from the manifest's ${f.sha256}`);
  }
  onProgress?.(total, total);
  return { files: manifest.files.length, bytes: total };
}
