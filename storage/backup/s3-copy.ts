/**
 * A verified backup copied to S3 under its tenant's prefix, and back:
 *
 *   tenants/<tenant>/backups/<end offset, 20 digits>-<created ms>/store/<file>   every listed file
 *   tenants/<tenant>/backups/<...>/backup.json                                   the manifest, last
 *
 * (the same `tenants/<tenant>/` prefix as the tenant's audit batches). Upload verifies every
 * file against the manifest first and sends each file's SHA-256 so S3 rejects a corrupted
 * transfer; the manifest goes last, so a listing with a manifest is a complete backup, and an
 * upload cut short (its objects without a manifest) is never listed nor downloaded. Download
 * writes into a new or empty directory, which appears only whole, and verifies every hash before
 * returning; `restoreBackup` then proves the state hash as for any backup.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { MemoryError } from '../errors.js';
import { fsyncDirsUpTo } from '../io/durable-dir.js';
import { nodeFileLayer } from '../io/node-file-layer.js';
import { backupFilePath, backupManifestFileName, encodeBackupManifest, type BackupManifest } from './backup-manifest.js';
import { writeBackupDir } from './backup-destination.js';
import { BackupInvalid, readBackupManifest, verifyBackupFiles } from './verify-backup.js';

export interface BackupBucket {
  readonly client: S3Client;
  readonly bucket: string;
}

/** The tenant id pattern of server/tenants/tenant-id.ts, checked again here before a key is built from it. */
const tenantKeyPattern = /^[a-z0-9][a-z0-9-]{1,62}$/;
const backupNamePattern = /^\d{20}-\d{1,16}$/;
/** Pages of objects (1,000 each) listed under a tenant's backups at most: every object of every backup is listed. */
export const listPagesMax = 200;

export function backupsPrefix(tenant: string): string {
  if (!tenantKeyPattern.test(tenant)) throw new MemoryError('invalid_argument', 'invalid tenant id for an S3 key');
  return `tenants/${tenant}/backups/`;
}

export function backupName(manifest: BackupManifest): string {
  return `${String(Math.max(manifest.endOffset, 0)).padStart(20, '0')}-${manifest.createdAtMs}`;
}

/** Where a backup is uploaded: its tenant's prefix and its name. */
export function uploadPrefix(manifest: BackupManifest & { tenant: string }): string {
  return `${backupsPrefix(manifest.tenant)}${backupName(manifest)}/`;
}

export interface UploadReport {
  readonly prefix: string;
  readonly name: string;
  readonly objects: number;
  readonly bytes: number;
}

export async function uploadBackup(backupDir: string, bucket: BackupBucket, onProgress?: (phase: string, done: number, total: number) => void): Promise<UploadReport> {
  const manifest = await readBackupManifest(backupDir);
  if (manifest.tenant === null) throw new MemoryError('invalid_argument', `backup ${backupDir} names no tenant; it has no S3 prefix`);
  const checked = await verifyBackupFiles(backupDir, manifest, nodeFileLayer, (d, t) => onProgress?.('verify', d, t));
  const name = backupName(manifest);
  const prefix = uploadPrefix({ ...manifest, tenant: manifest.tenant });
  let done = 0;
  for (const file of manifest.files) {
    await bucket.client.send(new PutObjectCommand({
      Bucket: bucket.bucket,
      Key: `${prefix}store/${file.path}`,
      Body: createReadStream(backupFilePath(backupDir, file)),
      ContentLength: file.bytes,
      ChecksumSHA256: Buffer.from(file.sha256, 'hex').toString('base64'),
    }));
    onProgress?.('upload', (done += file.bytes), checked.bytes);
  }
  const body = encodeBackupManifest(manifest);
  await bucket.client.send(new PutObjectCommand({
    Bucket: bucket.bucket,
    Key: `${prefix}${backupManifestFileName}`,
    Body: body,
    ContentMD5: createHash('md5').update(body).digest('base64'),
    ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
  }));
  return { prefix, name, objects: manifest.files.length + 1, bytes: checked.bytes + body.length };
}

/**
 * Names of the complete backups (those with a manifest) of a tenant, oldest first by when they
 * were taken (the name's created ms), not by end offset: a store started over (`tenants delete`,
 * then the tenant used again) or restored from an older backup has lower offsets than the backups
 * taken before, and `--from-s3 latest` must not bring back the history it replaced.
 * At most `pagesMax` pages are listed: past them, refused rather than missing the newest.
 */
export async function listUploadedBackups(bucket: BackupBucket, tenant: string, pagesMax = listPagesMax): Promise<string[]> {
  const prefix = backupsPrefix(tenant);
  const names: string[] = [];
  let token: string | undefined;
  for (let page = 0; ; page++) {
    if (page >= pagesMax) {
      throw new MemoryError('limit_exceeded', `more than ${pagesMax} pages of objects under s3://${bucket.bucket}/${prefix} (listPagesMax): the newest backup may be among those not listed`,
        'name the backup to restore (--from-s3 NAME, as backup --upload printed it), or remove old backups under that prefix');
    }
    const listed = await bucket.client.send(new ListObjectsV2Command({ Bucket: bucket.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of listed.Contents ?? []) {
      const rest = o.Key?.slice(prefix.length) ?? '';
      const [name, file] = rest.split('/');
      if (file === backupManifestFileName && name && backupNamePattern.test(name)) names.push(name);
    }
    if (!listed.IsTruncated) break;
    token = listed.NextContinuationToken;
  }
  const createdMs = (name: string) => Number(name.slice(name.indexOf('-') + 1));
  return names.sort((a, b) => createdMs(a) - createdMs(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Download one uploaded backup into `targetDir` (absent or empty) and verify every file; returns
 * its manifest. Written as a backup is (backup-destination.ts): `targetDir` appears only whole and
 * durable, so a download cut short is never taken for a backup.
 */
export async function downloadBackup(bucket: BackupBucket, tenant: string, name: string, targetDir: string): Promise<BackupManifest> {
  if (!backupNamePattern.test(name)) {
    throw new MemoryError('invalid_argument', `invalid backup name ${name}: a name is END_OFFSET-CREATED_MS (20 digits, a dash, milliseconds)`,
      'give the name `backup --upload` printed ("restore with --from-s3 NAME"), or --from-s3 latest for the newest');
  }
  const prefix = `${backupsPrefix(tenant)}${name}/`;
  const fl = nodeFileLayer;
  const written = await writeBackupDir(fl, targetDir, async (scratch) => {
    const fetch = async (key: string, file: string, missing: string) => {
      const got = await bucket.client.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: key })).catch((error: Error) => {
        throw error.name === 'NoSuchKey' ? new BackupInvalid(`s3://${bucket.bucket}/${key}`, missing, 'restore a complete backup: --from-s3 latest takes the newest one with a manifest') : error;
      });
      await fl.mkdirp(path.dirname(file));
      await pipeline(got.Body as Readable, createWriteStream(file, { flags: 'wx', mode: 0o600 }));
      const handle = await fl.open(file, 'r');
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
      return file;
    };
    const manifestFile = await fetch(`${prefix}${backupManifestFileName}`, path.join(scratch, backupManifestFileName),
      `missing: backup ${name} of ${tenant} has no manifest in S3 (it is uploaded last): its upload was interrupted, or no such backup was uploaded`);
    const manifest = await readBackupManifest(scratch);
    if (manifest.tenant !== tenant) throw new BackupInvalid(manifestFile, `manifest names tenant ${manifest.tenant}, not ${tenant}`);
    const files = [manifestFile];
    for (const file of manifest.files) {
      files.push(await fetch(`${prefix}store/${file.path}`, backupFilePath(scratch, file), `missing in S3, though the manifest of backup ${name} lists it`));
    }
    await fsyncDirsUpTo(fl, scratch, files);
    await verifyBackupFiles(scratch, manifest);
    return manifest;
  });
  return written.result;
}
