/**
 * Shippers killed (SIGKILL) at random moments, and two at once, over the real Postgres and Ceph
 * gateway: the chain that results has every staged event once, each batch key one version, and
 * `audit verify` proves it whole (DESIGN invariant 7: no gap, no duplicate link).
 */
import { CreateBucketCommand, GetObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { verifyAudit } from '../../storage/audit/verifier.js';
import { decodeAuditBatch } from '../../storage/audit/batch.js';
import { freshPostgresDatabase, s3Service } from '../support/services.js';

const child = path.join(import.meta.dirname, 'ship-child.ts');
const tenant = 'killed';
const events = 90;
let control: ControlPlane;
let databaseUrl: string;
let dropDatabase: () => Promise<void>;
let bucket: AuditBucket;

beforeAll(async () => {
  const db = await freshPostgresDatabase('auditsigkill');
  databaseUrl = db.url;
  dropDatabase = db.drop;
  control = await openControlPlane({ databaseUrl });
  const s3 = s3Service();
  bucket = openAuditBucket({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket: `ioboxx-audit-kill-${process.pid}-${Math.floor(Math.random() * 1e9)}` });
  await bucket.client.send(new CreateBucketCommand({ Bucket: bucket.bucket, ObjectLockEnabledForBucket: true }));
  await control.stageAudit(tenant, Array.from({ length: events }, (_, i) => ({ source: 'access_log', sourceSeq: i + 1, event: { seq: i + 1 } })));
}, 60_000);

afterAll(async () => {
  await control?.close();
  await dropDatabase?.();
});

/** Runs a shipper child; kills it once it printed `killAt` (a line kind and a count of them), else lets it finish. */
function runShipper(mode: string, killAt?: { line: string; after: number; delayMs: number }): Promise<'killed' | 'done'> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, databaseUrl, bucket.bucket, tenant, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let seen = 0;
    let done = false;
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: proc.stdout }).on('line', (line) => {
      if (line === 'done') done = true;
      if (killAt && line.startsWith(killAt.line) && ++seen === killAt.after) setTimeout(() => proc.kill('SIGKILL'), killAt.delayMs);
    });
    proc.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0 && done) resolve('done');
      else reject(new Error(`shipper exited ${code}: ${stderr}`));
    });
  });
}

test('shippers killed at random moments, then two at once, leave a whole chain: every event once, one version per key', async () => {
  const rounds = [
    { mode: 'pause', line: 'uploaded', after: 1, delayMs: 0 }, // between upload and confirmation
    { mode: 'run', line: 'confirmed', after: 1, delayMs: Math.floor(Math.random() * 40) },
    { mode: 'run', line: 'uploaded', after: 2, delayMs: Math.floor(Math.random() * 40) },
    { mode: 'pause', line: 'uploaded', after: 2, delayMs: 150 },
    { mode: 'run', line: 'confirmed', after: 2, delayMs: Math.floor(Math.random() * 40) },
  ];
  const outcomes: string[] = [];
  // A shipper that ran out of batches before its kill finished: fine, the next rounds have none left either.
  for (const round of rounds) outcomes.push(await runShipper(round.mode, round));
  // The kills between an upload and its confirmation did land there (the child waits 300 ms in between).
  expect([outcomes[0], outcomes[3]]).toEqual(['killed', 'killed']);
  // Two at once finish the rest: the lease lets one ship at a time.
  expect(await Promise.all([runShipper('run'), runShipper('run')])).toEqual(['done', 'done']);

  const batches = await control.auditBatches(tenant);
  expect(batches.every((b) => b.versionId !== null)).toBe(true);
  const listed = await bucket.client.send(new ListObjectVersionsCommand({ Bucket: bucket.bucket, Prefix: `tenants/${tenant}/audit/` }));
  const keys = (listed.Versions ?? []).map((v) => v.Key);
  expect(new Set(keys).size).toBe(keys.length);
  expect(keys.length).toBe(batches.length);
  const seqs: number[] = [];
  for (const b of batches) {
    const object = await bucket.client.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: b.key, VersionId: b.versionId! }));
    for (const e of decodeAuditBatch(await object.Body!.transformToByteArray()).batch!.events) seqs.push(e.sourceSeq);
  }
  expect(seqs).toEqual(Array.from({ length: events }, (_, i) => i + 1));
  const report = await verifyAudit(bucket, { tenant, control });
  expect(report.problems).toEqual([]);
  expect(report.tenants[0]).toMatchObject({ events, lastSeq: events });
}, 120_000);
