/**
 * Backups to S3 under the tenant's prefix, against the real Ceph RADOS Gateway on loopback:
 * upload, list, download into a new directory and restore with the state hash proven; a backup
 * whose object was replaced in the bucket is refused after download, naming the file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { restoreBackup } from '../../storage/backup/restore.js';
import { backupsPrefix, downloadBackup, listUploadedBackups, uploadBackup } from '../../storage/backup/s3-copy.js';
import { backupStore } from '../../storage/backup/take-backup.js';
import { BackupInvalid } from '../../storage/backup/verify-backup.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { s3Service } from '../support/services.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-s3-'));
let bucket: AuditBucket;
let backupDir: string;

beforeAll(async () => {
  const s3 = s3Service();
  const name = `ioboxx-backup-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  bucket = openAuditBucket({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket: name });
  // Object Lock on, as the audit bucket is: uploads must carry checksums.
  await bucket.client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }));
  const store = await Store.open({ dir: path.join(work, 'store'), module: counterModule, segmentBytesMax: 4096 });
  await Promise.all(Array.from({ length: 150 }, (_, i) => store.call('bump', { id: `c${i % 9}`, by: i }, testCaller)));
  await store.snapshot();
  await Promise.all(Array.from({ length: 80 }, (_, i) => store.call('put', { id: `p${i}`, type: 'x', n: i }, testCaller)));
  backupDir = path.join(work, 'backup');
  await backupStore(store, { backupDir, module: counterModule, tenant: 'acme' });
  await store.close();
}, 60_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

test('a backup uploaded under the tenant prefix downloads and restores with its state hash proven', async () => {
  const uploaded = await uploadBackup(backupDir, bucket);
  expect(uploaded.prefix.startsWith(backupsPrefix('acme'))).toBe(true);
  expect(await listUploadedBackups(bucket, 'acme')).toEqual([uploaded.name]);
  expect(await listUploadedBackups(bucket, 'other')).toEqual([]);

  const downloaded = path.join(work, 'downloaded');
  const manifest = await downloadBackup(bucket, 'acme', uploaded.name, downloaded);
  const restored = await restoreBackup(downloaded, path.join(work, 'restored'), { module: counterModule, expectedTenant: 'acme' });
  expect(restored).toMatchObject({ endOffset: manifest.endOffset, stateHash: manifest.stateHash, stateHashVerified: true });
}, 60_000);

test('an object replaced in the bucket is refused after download, naming the file', async () => {
  const uploaded = (await listUploadedBackups(bucket, 'acme')).at(-1)!;
  const downloaded = path.join(work, 'first');
  const manifest = await downloadBackup(bucket, 'acme', uploaded, downloaded);
  const victim = manifest.files.find((f) => f.path.startsWith('log/'))!;
  await bucket.client.send(new PutObjectCommand({
    Bucket: bucket.bucket, Key: `${backupsPrefix('acme')}${uploaded}/store/${victim.path}`, Body: Buffer.from('not the segment'),
    ContentMD5: (await import('node:crypto')).createHash('md5').update('not the segment').digest('base64'),
  }));
  const failure = await downloadBackup(bucket, 'acme', uploaded, path.join(work, 'second')).catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(BackupInvalid);
  expect((failure as BackupInvalid).file).toContain(victim.path.split('/').at(-1));
}, 60_000);
