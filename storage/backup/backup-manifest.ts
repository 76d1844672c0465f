/**
 * A backup is a directory:
 *
 *   backup.json                      this manifest, written last (tmp + fsync + rename + dir fsync):
 *                                    a directory without it is an unfinished backup
 *   store/snapshots/<offset>/...     one verified snapshot (absent when the store had none)
 *   store/log/<first offset>.log     the log after that snapshot, cut at a whole, durable frame
 *
 * `store/` is laid out exactly as a store directory, so a restore is a verified copy of it.
 * Every file is listed with its size and SHA-256; `stateHash` is the canonical state hash at
 * `endOffset`, proven by opening a copy of the backup with the engine before this manifest was written.
 * The manifest carries its own SHA-256 too (`manifestSha256`, since format 2): without it, a flipped
 * digit of a listed hash or path is reported as damage of that file, and one in `tables` or
 * `createdAtMs` is not seen at all.
 * `history` (history.ts) is the history of the store copied; a restore starts a new one that names it
 * as parent with fork offset `endOffset`. Absent in backups taken before history ids (and of stores
 * that never had one): such a restore's ancestry is unknown. An optional field, not a new format:
 * a version before it still restores these backups (it ignores the field, and its digest covers it).
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { z } from 'zod';
import { storeHistorySchema } from '../history.js';
import { isJsonObject } from '../json-object.js';

export const backupFormatVersion = 2;
/** Manifests of this format and later carry `manifestSha256`; format 1 (written before it) has none. */
const selfCheckedFormatMin = 2;
/** The manifest's own SHA-256: over the JSON of every other field, in the file's order. */
export const manifestDigestField = 'manifestSha256';
export const backupManifestFileName = 'backup.json';
export const backupStoreDirName = 'store';
/** A backup listing more files than this is damage, not data (a store keeps 2 snapshots and a bounded log). */
export const backupFilesMax = 100_000;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/** Relative, forward-slash, inside `store/`: never absolute, never climbing out. */
const storeRelativePath = z
  .string()
  .min(1)
  .max(200)
  .regex(/^(snapshots\/\d{20}\/[a-z.]+|log\/\d{20}\.log)$/, 'not a snapshot or segment file path');

export const backupFileSchema = z.object({ path: storeRelativePath, bytes: z.number().int().nonnegative(), sha256: sha256Hex });

export const backupManifestSchema = z.object({
  format: z.union([z.literal(1), z.literal(backupFormatVersion)]),
  kind: z.literal('ioboxx-memory-backup'),
  /** Tenant id, or null when the backup was taken of a bare store directory. */
  tenant: z.string().nullable(),
  createdAtMs: z.number().int(),
  /** How the sources were read: through the open Store, or from the files of a store (maybe open in another process). */
  source: z.enum(['store', 'directory']),
  /** The snapshot the backup starts from; null when the store had none (the log starts at 0). */
  snapshot: z.object({ offset: z.number().int().nonnegative(), stateHash: sha256Hex }).nullable(),
  /** First offset held by the copied log, and the last offset of the backup (-1: empty store). */
  logFirstOffset: z.number().int().nonnegative(),
  endOffset: z.number().int().min(-1),
  stateHash: sha256Hex,
  tables: z.record(z.string(), z.number().int().nonnegative()),
  files: z.array(backupFileSchema).max(backupFilesMax),
  history: storeHistorySchema.optional(),
});

export type BackupManifest = z.infer<typeof backupManifestSchema>;
export type BackupFile = z.infer<typeof backupFileSchema>;

/** The absolute path of a listed file inside a backup (the schema already refused escapes). */
export function backupFilePath(backupDir: string, file: BackupFile): string {
  return path.join(backupDir, backupStoreDirName, ...file.path.split('/'));
}

function manifestDigest(content: object): string {
  return createHash('sha256').update(JSON.stringify(content)).digest('hex');
}

/** The manifest file's bytes: the manifest and, last, its own SHA-256. */
export function encodeBackupManifest(manifest: BackupManifest): Buffer {
  return Buffer.from(JSON.stringify({ ...manifest, [manifestDigestField]: manifestDigest(manifest) }, null, 2));
}

/** Why a parsed manifest file does not match its own SHA-256 (undefined: it does, or it is of format 1, which has none). */
export function manifestDigestProblem(parsed: unknown): string | undefined {
  if (!isJsonObject(parsed)) return undefined; // the schema says what it is
  const { [manifestDigestField]: digest, ...content } = parsed;
  if (digest === undefined) {
    const format = content['format'];
    return typeof format === 'number' && format >= selfCheckedFormatMin ? `has no ${manifestDigestField}, which a manifest of format ${format} carries: it is damaged` : undefined;
  }
  if (digest !== manifestDigest(content)) return `does not match its own SHA-256 (${manifestDigestField}): the manifest is damaged`;
  return undefined;
}
