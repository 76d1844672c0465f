/**
 * A partial audit batch ships once its tenant's staging has gone idle (auditBatchIdleMsDefault),
 * not only once its oldest event is old: a burst's last events reach S3 about a second after
 * it. Real Postgres and a real Ceph RADOS Gateway with Object Lock (scripts/services/up.sh).
 * The shipper's clock is set relative to the staged rows' own times, so no test waits for time.
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { auditBatchAgeMsDefault, auditBatchIdleMsDefault, shipAudit } from '../../storage/audit/shipper.js';
import { verifyAudit } from '../../storage/audit/verifier.js';
import { freshPostgresDatabase, s3Service } from '../support/services.js';

const retentionDays = 1;
let control: ControlPlane;
let dropDatabase: () => Promise<void>;
let bucket: AuditBucket;

async function stage(tenant: string, from: number, to: number): Promise<void> {
  const events = [];
  for (let seq = from; seq <= to; seq++) {
    events.push({ source: 'access_log', sourceSeq: seq, event: { seq, action: 'tools/call', target: `t${seq}`, outcome: 'ok' } });
  }
  await control.stageAudit(tenant, events);
}

/** When the tenant's oldest and newest staged events were staged (Postgres's clock). */
async function stagedTimes(tenant: string): Promise<{ oldestMs: number; newestMs: number }> {
  const staged = await control.stagedAudit(tenant, { limit: 1_000 });
  return { oldestMs: staged[0]!.stagedAtMs, newestMs: staged[staged.length - 1]!.stagedAtMs };
}

beforeAll(async () => {
  const db = await freshPostgresDatabase('auditidle');
  dropDatabase = db.drop;
  control = await openControlPlane({ databaseUrl: db.url });
  const s3 = s3Service();
  const config = { endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const name = `ioboxx-audit-idle-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  await openAuditBucket({ ...config, bucket: 'unused' }).client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }));
  bucket = openAuditBucket({ ...config, bucket: name });
});

afterAll(async () => {
  await control?.close();
  await dropDatabase?.();
});

describe('a partial audit batch ships once staging is idle', () => {
  test('while events were staged less than the idle time ago the batch waits, due when the idle time is up; then it ships though young', async () => {
    expect(auditBatchIdleMsDefault).toBeLessThan(auditBatchAgeMsDefault);
    await stage('burst', 1, 4);
    await stage('burst', 5, 6);
    const { oldestMs, newestMs } = await stagedTimes('burst');
    const recent = await shipAudit(control, bucket, { tenant: 'burst', retentionDays, clock: () => newestMs + auditBatchIdleMsDefault - 300 });
    expect(recent).toMatchObject({ batches: 0, events: 0 });
    // Due by idleness (in 300 ms), well before its age would be.
    expect(recent.nextDueInMs).toBe(300);
    expect(newestMs + auditBatchIdleMsDefault - oldestMs).toBeLessThan(auditBatchAgeMsDefault);
    const idle = await shipAudit(control, bucket, { tenant: 'burst', retentionDays, clock: () => newestMs + auditBatchIdleMsDefault });
    expect(idle).toMatchObject({ batches: 1, events: 6 });
    expect(await control.stagedAudit('burst', { limit: 10 })).toEqual([]);
    const report = await verifyAudit(bucket, { tenant: 'burst', control });
    expect(report.problems).toEqual([]);
    expect(report.tenants[0]).toMatchObject({ batches: 1, events: 6, lastSeq: 6 });
  });

  test('a tenant that keeps staging still ships by age: the newest event resets idleness, not the oldest event\'s age', async () => {
    await stage('steady', 1, 3);
    const { oldestMs } = await stagedTimes('steady');
    await stage('steady', 4, 5);
    const { newestMs } = await stagedTimes('steady');
    // Staging not idle (the newest event is fresh) and the oldest younger than the age: waits.
    const fresh = await shipAudit(control, bucket, { tenant: 'steady', retentionDays, batchAgeMsMax: 60_000, clock: () => newestMs + 10 });
    expect(fresh).toMatchObject({ batches: 0, nextDueInMs: auditBatchIdleMsDefault - 10 });
    // The oldest old enough: ships by age although the newest event is fresh.
    const aged = await shipAudit(control, bucket, {
      tenant: 'steady', retentionDays, batchAgeMsMax: newestMs + 10 - oldestMs, batchIdleMsMax: 60_000, clock: () => newestMs + 10,
    });
    expect(aged).toMatchObject({ batches: 1, events: 5 });
    expect((await verifyAudit(bucket, { tenant: 'steady', control })).problems).toEqual([]);
  });
});
