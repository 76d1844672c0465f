/**
 * `restore DIR TENANT --from-s3 latest` restores the backup taken last, against the real Ceph RADOS
 * Gateway on loopback: after the tenant started over (`tenants delete`, then the tenant used again)
 * its new backups end at lower offsets than those of the history it replaced, and must still win.
 * And a listing too long to read whole is refused, not cut short (the newest could be past the cut).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { listUploadedBackups, uploadBackup, type UploadReport } from '../../storage/backup/s3-copy.js';
import { backupStoreDirectory } from '../../storage/backup/take-backup.js';
import { memoryModule } from '../../tools/index.js';
import { cliCommand, cliEnv } from '../cli/cli-process.js';
import { writeMemoryStore } from '../cli/memory-store.js';
import { runProcess } from '../support/run-process.js';
import { s3Service } from '../support/services.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-s3-latest-'));
let bucket: AuditBucket;
let s3Env: NodeJS.ProcessEnv;

/** A memory store of `puts` objects, backed up as taken at `nowMs` and uploaded. */
async function uploadedBackupOf(name: string, puts: number, nowMs: number): Promise<UploadReport> {
  const storeDir = path.join(work, name, 'store');
  await writeMemoryStore(storeDir, puts, 64 * 1024);
  const backupDir = path.join(work, name, 'backup');
  await backupStoreDirectory(storeDir, { backupDir, module: memoryModule, tenant: 'acme', nowMs });
  return uploadBackup(backupDir, bucket);
}

beforeAll(async () => {
  const s3 = s3Service();
  const name = `ioboxx-backup-latest-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  bucket = openAuditBucket({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket: name });
  await bucket.client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }));
  s3Env = { ...cliEnv(), S3_ENDPOINT: s3.endpoint, S3_REGION: s3.region, S3_BUCKET: name, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
}, 60_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('latest is the backup taken last, even when the tenant started over and it ends at a lower offset', async () => {
  const replaced = await uploadedBackupOf('replaced-history', 300, 1_800_000_000_000);
  const current = await uploadedBackupOf('started-over', 50, 1_800_000_060_000);
  expect(await listUploadedBackups(bucket, 'acme')).toEqual([replaced.name, current.name]);

  const [node, ...args] = cliCommand(['restore', path.join(work, 'download'), 'acme', '--from-s3', 'latest', '--data-dir', path.join(work, 'data'), '--json']);
  const restored = await runProcess(node!, args, { env: s3Env });
  expect(restored.code, restored.stderr).toBe(0);
  expect(JSON.parse(restored.stdout), 'latest restored the history the tenant replaced').toMatchObject({ ok: true, endOffset: 49 });
}, 120_000);

test('a listing longer than its page bound is refused, naming the bound and what to do, not cut short', async () => {
  // A bucket whose listing never ends: every page holds a complete backup and says more follow.
  let pages = 0;
  const send = async (command: unknown) => {
    if (!(command instanceof ListObjectsV2Command)) throw new Error('only listings expected');
    pages++;
    return { Contents: [{ Key: `tenants/acme/backups/${String(pages).padStart(20, '0')}-${pages}/backup.json` }], IsTruncated: true, NextContinuationToken: `page-${pages}` };
  };
  const endless = { client: { send } as unknown as S3Client, bucket: 'b' };
  const refused = await listUploadedBackups(endless, 'acme', 3).then(() => undefined, (error: unknown) => error);
  expect(refused).toMatchObject({
    code: 'limit_exceeded',
    message: 'more than 3 pages of objects under s3://b/tenants/acme/backups/ (listPagesMax): the newest backup may be among those not listed',
    hint: expect.stringContaining('--from-s3 NAME'),
  });
  expect(pages).toBe(3);
});
