/**
 * An upload or a download of a backup cut short is never taken for a backup, against the real Ceph
 * RADOS Gateway on loopback. The process dying mid-transfer is played by a client whose requests
 * fail from the Nth on (what the bucket or the disk then holds is the same). An upload without its
 * manifest is not listed and, asked for by name, is refused naming the missing manifest; a download
 * leaves DIR absent until it is whole, and the next one into DIR goes through.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { backupName, backupsPrefix, downloadBackup, listUploadedBackups, uploadBackup, type BackupBucket } from '../../storage/backup/s3-copy.js';
import { backupStore } from '../../storage/backup/take-backup.js';
import { BackupInvalid, readBackupManifest } from '../../storage/backup/verify-backup.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { s3Service } from '../support/services.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-s3-interrupted-'));
let bucket: AuditBucket;
/** Two backups of one store, the second after more writes (so it has a name of its own). */
const backupDirs = [path.join(work, 'first'), path.join(work, 'second')];

beforeAll(async () => {
  const s3 = s3Service();
  const name = `ioboxx-backup-cut-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  bucket = openAuditBucket({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket: name });
  await bucket.client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }));
  const store = await Store.open({ dir: path.join(work, 'store'), module: counterModule, segmentBytesMax: 4096 });
  for (const backupDir of backupDirs) {
    await Promise.all(Array.from({ length: 150 }, (_, i) => store.call('bump', { id: `c${i % 9}`, by: i }, testCaller)));
    await backupStore(store, { backupDir, module: counterModule, tenant: 'acme' });
  }
  await store.close();
}, 60_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The bucket as a process sees it that dies after `requests` requests: every later one fails. */
function dyingAfter(requests: number): BackupBucket {
  let left = requests;
  const send = (command: Parameters<S3Client['send']>[0]) => (left-- > 0 ? bucket.client.send(command) : Promise.reject(new Error('the process died here')));
  return { client: { send } as unknown as S3Client, bucket: bucket.bucket };
}

function leftBeside(dir: string): string[] {
  return readdirSync(path.dirname(dir)).filter((n) => n === path.basename(dir) || n.startsWith(`${path.basename(dir)}.`));
}

test('an upload cut short before its manifest is not listed, and asked for by name is refused naming the missing manifest', async () => {
  const whole = await uploadBackup(backupDirs[0]!, bucket);
  const cut = await readBackupManifest(backupDirs[1]!);
  expect(cut.files.length).toBeGreaterThan(2);
  await expect(uploadBackup(backupDirs[1]!, dyingAfter(2))).rejects.toThrow('the process died here');
  expect(await listUploadedBackups(bucket, 'acme'), 'only the whole upload is a backup').toEqual([whole.name]);

  const name = backupName(cut);
  const dir = path.join(work, 'download-of-cut');
  const refused = await downloadBackup(bucket, 'acme', name, dir).then(() => undefined, (error: unknown) => error);
  expect(refused).toBeInstanceOf(BackupInvalid);
  expect((refused as BackupInvalid).file).toBe(`s3://${bucket.bucket}/${backupsPrefix('acme')}${name}/backup.json`);
  expect((refused as BackupInvalid).reason).toBe(`missing: backup ${name} of acme has no manifest in S3 (it is uploaded last): its upload was interrupted, or no such backup was uploaded`);
  expect(leftBeside(dir), 'a refused download left this behind').toEqual([]);
}, 60_000);

test('a download cut short leaves neither DIR nor its partial copy, and the next download into DIR goes through', async () => {
  const { name } = await uploadBackup(backupDirs[0]!, bucket);
  const dir = path.join(work, 'download');
  await expect(downloadBackup(dyingAfter(3), 'acme', name, dir)).rejects.toThrow('the process died here');
  expect(leftBeside(dir), 'a download cut short left this behind').toEqual([]);
  const manifest = await downloadBackup(bucket, 'acme', name, dir);
  expect(manifest).toEqual(await readBackupManifest(backupDirs[0]!));
  expect(existsSync(path.join(dir, 'backup.json'))).toBe(true);
  expect(leftBeside(dir)).toEqual(['download']);
}, 60_000);
