/**
 * A batch is bounded by bytes as well as by events: a tenant's callers choose what its access
 * rows hold (ids and tool names, up to 1,024 characters each), and a full batch of such rows
 * must still ship.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { auditBatchEventsDefault, shipAudit } from '../../storage/audit/shipper.js';
import { verifyAudit } from '../../storage/audit/verifier.js';
import { auditBatchBytesMax } from '../../storage/audit/batch.js';
import { freshPostgresDatabase, s3Service } from '../support/services.js';

let control: ControlPlane;
let dropDatabase: () => Promise<void>;
let bucket: AuditBucket;

beforeAll(async () => {
  const db = await freshPostgresDatabase('auditbytes');
  dropDatabase = db.drop;
  control = await openControlPlane({ databaseUrl: db.url });
  const s3 = s3Service();
  const config = { endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const name = `ioboxx-audit-bytes-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  await openAuditBucket({ ...config, bucket: 'unused' }).client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }));
  bucket = openAuditBucket({ ...config, bucket: name });
});

afterAll(async () => {
  await control?.close();
  await dropDatabase?.();
});

test('a full batch of access rows whose ids are control characters (each escaped to 6 bytes) ships, in as many batches as its bytes need', async () => {
  // An access row as a caller can make it: eight id arguments and a tool name of 1,024 characters each.
  const field = '\u0001'.repeat(1024);
  const events = Array.from({ length: auditBatchEventsDefault }, (_, i) => ({
    source: 'access_log',
    sourceSeq: i + 1,
    event: { seq: i + 1, at_ms: 0, subject: 'caller', action: 'tools/call', target: field, object_ids: Array(8).fill(field), offset: null, outcome: 'invalid_argument' },
  }));
  expect(Buffer.byteLength(JSON.stringify(events.map((e) => e.event)))).toBeGreaterThan(auditBatchBytesMax);
  for (let from = 0; from < events.length; from += 500) await control.stageAudit('wide', events.slice(from, from + 500));
  const result = await shipAudit(control, bucket, { tenant: 'wide', retentionDays: 1, force: true });
  expect(result.failedTenants).toEqual([]);
  expect(result.events).toBe(auditBatchEventsDefault);
  expect(result.batches).toBeGreaterThan(1);
  expect(await control.stagedAudit('wide', { limit: 10 })).toEqual([]);
  expect((await verifyAudit(bucket, { tenant: 'wide', control })).problems).toEqual([]);
});
