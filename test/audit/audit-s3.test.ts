/**
 * The audit shipper and verifier against a real Ceph RADOS Gateway with Object Lock, and the
 * control plane on real Postgres reached through PgBouncer in transaction mode, as Supabase's
 * pooler is (all started by scripts/services/up.sh).
 */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { shipAudit, startAuditShipper } from '../../storage/audit/shipper.js';
import { verifyAudit } from '../../storage/audit/verifier.js';
import { auditBatchFormat, auditBatchKey } from '../../storage/audit/batch.js';
import { freePort, freshPostgresDatabase, runServiceScript, s3Service } from '../support/services.js';

const retentionDays = 1;
let control: ControlPlane;
let dropDatabase: () => Promise<void>;
let databaseUrl: string;
let bucket: AuditBucket;

function s3Config(endpoint?: string) {
  const s3 = s3Service();
  return { endpoint: endpoint ?? s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
}

async function createBucket(client: S3Client, objectLock: boolean): Promise<string> {
  const name = `ioboxx-audit-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  await client.send(new CreateBucketCommand({ Bucket: name, ...(objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
  return name;
}

async function stage(tenant: string, from: number, to: number): Promise<void> {
  const events = [];
  for (let seq = from; seq <= to; seq++) {
    events.push({ source: 'access_log', sourceSeq: seq, event: { seq, action: 'tools/call', target: `t${seq}`, outcome: 'ok' } });
  }
  await control.stageAudit(tenant, events);
}

/** What an operator's stray statement (or a bad restore) does to staging behind the server's back. */
async function sql(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** Resolves once the tenant's shipping lease has run out (the lease is Postgres time). */
async function leaseExpired(tenant: string): Promise<void> {
  for (;;) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const { rows } = await client.query('select ship_lease_until < now() as expired from audit_tenants where tenant = $1', [tenant]).finally(() => client.end());
    if (rows[0]?.expired) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

beforeAll(async () => {
  const db = await freshPostgresDatabase('audit');
  dropDatabase = db.drop;
  databaseUrl = db.url;
  // Deployed as against Supabase: statements through the transaction pooler, migrations direct.
  control = await openControlPlane({ databaseUrl: db.pooledUrl(), databaseDirectUrl: db.url });
  const base = openAuditBucket({ ...s3Config(), bucket: 'unused' });
  bucket = openAuditBucket({ ...s3Config(), bucket: await createBucket(base.client, true) });
});

afterAll(async () => {
  await control?.close();
  await dropDatabase?.();
});

describe('audit shipping to S3 Object Lock', () => {
  test('staged events reach S3 in hash-chained COMPLIANCE batches, are cleared once confirmed, and verify', async () => {
    await stage('acme', 1, 25);
    // Neither full nor old: nothing ships yet.
    expect((await shipAudit(control, bucket, { tenant: 'acme', retentionDays, batchEventsMax: 10, batchAgeMsMax: 60_000, batchIdleMsMax: 60_000 })).batches).toBe(2);
    expect((await control.stagedAudit('acme', { limit: 100 })).map((s) => s.seq)).toEqual([21, 22, 23, 24, 25]);
    const forced = await shipAudit(control, bucket, { tenant: 'acme', retentionDays, batchEventsMax: 10, force: true });
    expect(forced).toMatchObject({ batches: 1, events: 5 });
    expect(await control.stagedAudit('acme', { limit: 100 })).toEqual([]);

    const batches = await control.auditBatches('acme');
    expect(batches.map((b) => [b.batchSeq, b.firstSeq, b.lastSeq, b.count])).toEqual([
      [1, 1, 10, 10],
      [2, 11, 20, 10],
      [3, 21, 25, 5],
    ]);
    expect(batches[1]!.prevSha256).toBe(batches[0]!.sha256);
    expect(batches.every((b) => b.versionId !== null && b.key === auditBatchKey('acme', b.batchSeq))).toBe(true);

    const report = await verifyAudit(bucket, { tenant: 'acme', control });
    expect(report.problems).toEqual([]);
    expect(report.tenants).toEqual([{ tenant: 'acme', batches: 3, events: 25, lastSeq: 25, headSha256: batches[2]!.sha256 }]);
  });

  test('verify says how many batches it has proven of all it listed, a window at a time, up to the last', async () => {
    await stage('progress', 1, 20);
    await shipAudit(control, bucket, { tenant: 'progress', retentionDays, batchEventsMax: 1, force: true });
    const seen: Array<[string, number, number]> = [];
    const report = await verifyAudit(bucket, { tenant: 'progress', control, onProgress: (phase, done, total) => seen.push([phase, done, total]) });
    expect(report.problems).toEqual([]);
    const batches = seen.filter(([phase]) => phase === 'batches');
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.every(([, , total]) => total === 20)).toBe(true);
    expect(batches[batches.length - 1]).toEqual(['batches', 20, 20]);
  });

  test('a batch the server ships while verify runs (after its key was listed) is no missing batch', async () => {
    await stage('shipped-beside', 1, 2);
    await shipAudit(control, bucket, { tenant: 'shipped-beside', retentionDays, force: true });
    await stage('shipped-beside', 3, 4);
    // The shipper beside the verify confirms the next batch just after the bucket was listed.
    let shippedBeside = false;
    const listed = {
      ...bucket,
      client: new Proxy(bucket.client, {
        get: (target, name) => name !== 'send' ? Reflect.get(target, name) : async (command: Parameters<S3Client['send']>[0]) => {
          const answer = await target.send(command);
          if (command instanceof ListObjectVersionsCommand && !shippedBeside) {
            shippedBeside = true;
            expect(await shipAudit(control, bucket, { tenant: 'shipped-beside', retentionDays, force: true })).toMatchObject({ batches: 1 });
          }
          return answer;
        },
      }),
    } as AuditBucket;
    const report = await verifyAudit(listed, { tenant: 'shipped-beside', control });
    expect(shippedBeside).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.tenants).toEqual([expect.objectContaining({ tenant: 'shipped-beside', batches: 2, events: 4, lastSeq: 4 })]);
    // A recorded batch the bucket does not hold is still missing, however often it is listed.
    await sql(`insert into audit_batches (tenant, batch_seq, first_seq, last_seq, event_count, sha256, prev_sha256, object_key, version_id, confirmed_at)
      values ('shipped-beside', 3, 5, 5, 1, 'x', 'x', '${auditBatchKey('shipped-beside', 3)}', 'gone', now())`);
    expect((await verifyAudit(listed, { tenant: 'shipped-beside', control })).problems).toContainEqual(
      expect.objectContaining({ kind: 'missing_batch', batchSeq: 3, key: auditBatchKey('shipped-beside', 3) }),
    );
  });

  test('a batch retained for less than the configured retention (a shipper run with a shorter one) is short_retention, naming its dates', async () => {
    await stage('shortret', 1, 3);
    await shipAudit(control, bucket, { tenant: 'shortret', retentionDays, force: true });
    expect((await verifyAudit(bucket, { tenant: 'shortret', control, retentionDays })).problems).toEqual([]);
    const report = await verifyAudit(bucket, { tenant: 'shortret', control, retentionDays: 30 });
    expect(report.problems).toEqual([
      expect.objectContaining({ kind: 'short_retention', tenant: 'shortret', batchSeq: 1, detail: expect.stringMatching(/^retained until \S+, 1\.0 days after it was written on \S+; the retention is 30 days$/) }),
    ]);
  });

  test('the shipper loop closes a batch when it is full, and a partial one once its oldest event is old enough', async () => {
    await stage('loop', 1, 7);
    let clockOffsetMs = 0;
    let shipped = 0;
    let idlePassesAfterFull = 0;
    let finished: () => void = () => undefined;
    const allShipped = new Promise<void>((resolve) => (finished = resolve));
    const loop = startAuditShipper(control, bucket, {
      tenant: 'loop',
      retentionDays,
      batchEventsMax: 5,
      batchAgeMsMax: 60_000,
      batchIdleMsMax: 60_000, // only the age can close the partial batch here
      intervalMs: 20,
      clock: () => Date.now() + clockOffsetMs,
      onError: (error) => console.error(error),
      onPass: (result) => {
        shipped += result.events;
        if (shipped === 5 && result.events === 0) {
          idlePassesAfterFull++;
          clockOffsetMs = 60_000; // the two left over are young: let a minute pass
        }
        if (shipped === 7) finished();
      },
    });
    await allShipped;
    await loop.stop();
    expect(idlePassesAfterFull).toBe(1);
    const report = await verifyAudit(bucket, { tenant: 'loop', control });
    expect(report.problems).toEqual([]);
    expect(report.tenants[0]).toMatchObject({ batches: 2, events: 7 });
  });

  test('the shipper loop tells when it last had a batch confirmed (undefined before its first)', async () => {
    let passed: () => void = () => undefined;
    const nextPass = () => new Promise<void>((resolve) => (passed = resolve));
    let pass = nextPass();
    const loop = startAuditShipper(control, bucket, { tenant: 'last-shipped', retentionDays, force: true, intervalMs: 3_600_000, onPass: () => passed() });
    try {
      await pass;
      expect(loop.lastShippedAtMs()).toBeUndefined();
      const beforeMs = Date.now();
      await stage('last-shipped', 1, 2);
      pass = nextPass();
      loop.nudge();
      await pass;
      expect(loop.lastShippedAtMs()).toBeGreaterThanOrEqual(beforeMs);
    } finally {
      await loop.stop();
    }
  });

  test('the shipper loop wakes when nudged (a full batch staged) and when a partial batch comes due by age, not at its next tick', async () => {
    const hourMs = 3_600_000;
    const ageMsMax = 1_000;
    const passes: Array<{ events: number; nextDueInMs?: number }> = [];
    const shipped = () => passes.reduce((sum, p) => sum + p.events, 0);
    let onPass: () => void = () => undefined;
    const nextPass = () => new Promise<void>((resolve) => (onPass = resolve));
    let passed = nextPass();
    const loop = startAuditShipper(control, bucket, {
      tenant: 'wake',
      retentionDays,
      batchEventsMax: 5,
      batchAgeMsMax: ageMsMax,
      batchIdleMsMax: hourMs, // the age, not idleness, is what this test waits for
      intervalMs: hourMs, // only a nudge or a due batch can start another pass within this test
      onError: (error) => console.error(error),
      onPass: (result) => {
        passes.push({ events: result.events, ...(result.nextDueInMs !== undefined && { nextDueInMs: result.nextDueInMs }) });
        onPass();
      },
    });
    try {
      await passed; // the first pass: nothing staged
      expect(passes).toEqual([{ events: 0 }]);
      await stage('wake', 1, 7);
      passed = nextPass();
      loop.nudge();
      await passed;
      expect(passes[1]!.events).toBeGreaterThanOrEqual(5); // the full batch, at once
      // The two left over ship once their age comes due (in that pass already, on a slow machine).
      while (shipped() < 7) {
        passed = nextPass();
        await passed;
      }
    } finally {
      await loop.stop();
    }
    for (const pass of passes) if (pass.nextDueInMs !== undefined) expect(pass.nextDueInMs).toBeLessThanOrEqual(ageMsMax);
    const report = await verifyAudit(bucket, { tenant: 'wake', control });
    expect(report.problems).toEqual([]);
    expect(report.tenants[0]).toMatchObject({ batches: 2, events: 7 });
  });

  test('a restart between upload and confirmation adopts the uploaded version: no second version, no gap', async () => {
    await stage('restart', 1, 8);
    let crashes = 1;
    const crash = () => {
      if (crashes-- > 0) throw new Error('process died after the upload');
    };
    const died = await shipAudit(control, bucket, { tenant: 'restart', retentionDays, batchEventsMax: 5, force: true, onUploaded: crash });
    expect(died.failedTenants).toEqual([expect.objectContaining({ tenant: 'restart', message: 'process died after the upload' })]);
    expect((await control.stagedAudit('restart', { limit: 10 })).length).toBe(8); // nothing cleared before confirmation
    const resumed = await shipAudit(control, bucket, { tenant: 'restart', retentionDays, batchEventsMax: 5, force: true });
    expect(resumed).toMatchObject({ batches: 2, events: 8 });
    const report = await verifyAudit(bucket, { tenant: 'restart', control });
    expect(report.problems).toEqual([]);
    expect(report.tenants[0]).toMatchObject({ batches: 2, events: 8, lastSeq: 8 });
  });

  test('a new version written under a shipped key is reported by verify', async () => {
    await stage('tampered', 1, 3);
    await shipAudit(control, bucket, { tenant: 'tampered', retentionDays, force: true });
    const key = auditBatchKey('tampered', 1);
    const forged = Buffer.from('{"forged":true}');
    await bucket.client.send(
      new PutObjectCommand({
        Bucket: bucket.bucket,
        Key: key,
        Body: forged,
        ContentMD5: createHash('md5').update(forged).digest('base64'),
      }),
    );
    const report = await verifyAudit(bucket, { tenant: 'tampered', control });
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([expect.objectContaining({ kind: 'extra_version', tenant: 'tampered', key, batchSeq: 1 })]);
    // The shipped version itself still proves out: the chain of what was shipped is whole.
    expect(report.tenants[0]).toMatchObject({ batches: 1, events: 3 });
  });

  test('a second version holding the shipped bytes under COMPLIANCE (an upload sent twice) is noted, not a problem; other bytes are', async () => {
    await stage('twice', 1, 3);
    await shipAudit(control, bucket, { tenant: 'twice', retentionDays, force: true });
    const [shipped] = await control.auditBatches('twice');
    const key = auditBatchKey('twice', 1);
    const body = await (await bucket.client.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: key }))).Body!.transformToByteArray();
    const copy = await bucket.client.send(new PutObjectCommand({
      Bucket: bucket.bucket, Key: key, Body: body, ContentMD5: createHash('md5').update(body).digest('base64'), Metadata: { sha256: shipped!.sha256 },
      ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000),
    }));
    const report = await verifyAudit(bucket, { tenant: 'twice', control });
    expect(report.problems).toEqual([]);
    expect(report.duplicateVersions).toEqual([{ tenant: 'twice', key, versionId: copy.VersionId, shippedVersionId: shipped!.versionId }]);
    // One byte more is no copy.
    const other = Buffer.concat([Buffer.from(body), Buffer.from(' ')]);
    await bucket.client.send(new PutObjectCommand({
      Bucket: bucket.bucket, Key: key, Body: other, ContentMD5: createHash('md5').update(other).digest('base64'),
      ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000),
    }));
    expect((await verifyAudit(bucket, { tenant: 'twice', control })).problems).toEqual([expect.objectContaining({ kind: 'extra_version', key })]);
  });

  test('a COMPLIANCE batch forged onto the head of a chain (right prevSha256 and metadata) is named by verify with the control plane', async () => {
    await stage('forged', 1, 3);
    await shipAudit(control, bucket, { tenant: 'forged', retentionDays, force: true });
    const [head] = await control.auditBatches('forged');
    const body = Buffer.from(JSON.stringify({
      format: auditBatchFormat, tenant: 'forged', batchSeq: 2, firstSeq: 4, lastSeq: 4, count: 1, prevSha256: head!.sha256,
      events: [{ seq: 4, source: 'access_log', sourceSeq: 4, event: { seq: 4, action: 'tools/call', outcome: 'ok' } }],
    }));
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = auditBatchKey('forged', 2);
    await bucket.client.send(new PutObjectCommand({
      Bucket: bucket.bucket, Key: key, Body: body, ContentMD5: createHash('md5').update(body).digest('base64'), Metadata: { sha256 },
      ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000),
    }));
    expect((await verifyAudit(bucket, { tenant: 'forged' })).problems).toEqual([]); // the chain alone cannot tell
    expect((await verifyAudit(bucket, { tenant: 'forged', control })).problems).toEqual([
      expect.objectContaining({ kind: 'unexpected_object', tenant: 'forged', key, batchSeq: 2 }),
    ]);
  });

  test('a backup uploaded beside a tenant\'s audit (tenants/T/backups/) is no audit object; a stray key under its audit prefix is', async () => {
    await stage('beside', 1, 2);
    await shipAudit(control, bucket, { tenant: 'beside', retentionDays, force: true });
    const put = (key: string) =>
      bucket.client.send(new PutObjectCommand({ Bucket: bucket.bucket, Key: key, Body: '{}', ContentMD5: createHash('md5').update('{}').digest('base64') }));
    await put('tenants/beside/backups/00000000000000000001-1/backup.json');
    expect((await verifyAudit(bucket, { tenant: 'beside', control })).problems).toEqual([]);
    const everyTenant = await verifyAudit(bucket, { control });
    expect(everyTenant.problems.filter((p) => p.tenant === 'beside')).toEqual([]);
    expect(everyTenant.tenants.find((t) => t.tenant === 'beside')).toMatchObject({ batches: 1, events: 2 });

    await put('tenants/beside/audit/stray.json');
    expect((await verifyAudit(bucket, { tenant: 'beside', control })).problems).toEqual([
      expect.objectContaining({ kind: 'unexpected_object', tenant: 'beside', key: 'tenants/beside/audit/stray.json' }),
    ]);
  });

  test('S3 refuses to delete a shipped version, shorten its retention or bypass governance (403)', async () => {
    await stage('locked', 1, 2);
    await shipAudit(control, bucket, { tenant: 'locked', retentionDays, force: true });
    const [shipped] = await control.auditBatches('locked');
    const target = { Bucket: bucket.bucket, Key: shipped!.key, VersionId: shipped!.versionId! };
    const deleting = bucket.client.send(new DeleteObjectCommand(target));
    await expect(deleting.catch(statusOf)).resolves.toBe(403);
    const bypassing = bucket.client.send(new DeleteObjectCommand({ ...target, BypassGovernanceRetention: true }));
    await expect(bypassing.catch(statusOf)).resolves.toBe(403);
    const shortening = bucket.client.send(
      new PutObjectRetentionCommand({ ...target, Retention: { Mode: 'COMPLIANCE', RetainUntilDate: new Date(Date.now() + 60_000) } }),
    );
    await expect(shortening.catch(statusOf)).resolves.toBe(403);
    const downgrading = bucket.client.send(
      new PutObjectRetentionCommand({ ...target, BypassGovernanceRetention: true, Retention: { Mode: 'GOVERNANCE', RetainUntilDate: new Date(Date.now() + 60_000) } }),
    );
    await expect(downgrading.catch(statusOf)).resolves.toBe(403);
    expect((await verifyAudit(bucket, { tenant: 'locked', control })).problems).toEqual([]);
  });

  test('shipping to a bucket without Object Lock is refused and the events stay staged', async () => {
    const plain = openAuditBucket({ ...s3Config(), bucket: await createBucket(bucket.client, false) });
    await stage('nolock', 1, 3);
    await expect(shipAudit(control, plain, { retentionDays, force: true, tenant: 'nolock' })).rejects.toThrow(/does not have Object Lock/);
    expect((await control.stagedAudit('nolock', { limit: 10 })).length).toBe(3);
    expect(await control.auditBatches('nolock')).toEqual([]);
  });

  test('the gateway stopped mid-batch and started again: nothing lost, shipping resumes, the chain stays whole', async () => {
    const s3 = s3Service();
    const port = await freePort();
    const name = `fault${process.pid}`;
    const env = { IOBOXX_SERVICES_DIR: s3.servicesDir };
    await runServiceScript('ceph.sh', ['gateway-up', name, String(port)], env);
    try {
      const own = openAuditBucket({ ...s3Config(`http://127.0.0.1:${port}`), bucket: bucket.bucket });
      await stage('outage', 1, 30);
      let confirmed = 0;
      const stopAfterFirst = async () => {
        if (++confirmed === 1) await runServiceScript('ceph.sh', ['gateway-down', name], env);
      };
      const stopped = await shipAudit(control, own, { tenant: 'outage', retentionDays, batchEventsMax: 10, force: true, onConfirmed: stopAfterFirst });
      expect(stopped).toMatchObject({ batches: 1, failedTenants: [expect.objectContaining({ tenant: 'outage' })] });
      expect(confirmed).toBe(1);
      expect((await control.stagedAudit('outage', { limit: 100 })).map((s) => s.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 11));

      await runServiceScript('ceph.sh', ['gateway-up', name, String(port)], env);
      expect(await shipAudit(control, own, { tenant: 'outage', retentionDays, batchEventsMax: 10, force: true })).toMatchObject({ batches: 2, events: 20 });
      const report = await verifyAudit(own, { tenant: 'outage', control });
      expect(report.problems).toEqual([]);
      expect(report.tenants[0]).toMatchObject({ batches: 3, events: 30, lastSeq: 30 });
    } finally {
      await runServiceScript('ceph.sh', ['gateway-down', name], env);
    }
  });

  test('a hole in one tenant\'s staging fails that tenant alone, named; the tenants after it ship and verify names the gap', async () => {
    await stage('hole-a', 1, 10);
    await stage('hole-b', 1, 10);
    await sql(`delete from audit_staging where tenant = 'hole-a' and seq = 5`);
    const result = await shipAudit(control, bucket, { retentionDays, force: true });
    expect(result.failedTenants).toEqual([
      expect.objectContaining({ tenant: 'hole-a', message: expect.stringMatching(/tenant hole-a has a hole: seq 5 is missing/) }),
    ]);
    expect(await control.stagedAudit('hole-b', { limit: 100 })).toEqual([]);
    expect((await verifyAudit(bucket, { tenant: 'hole-b', control })).problems).toEqual([]);
    expect((await verifyAudit(bucket, { tenant: 'hole-a', control })).problems).toEqual([
      expect.objectContaining({ kind: 'gap', tenant: 'hole-a', detail: expect.stringContaining('must hold seq 1..10 (10 events') }),
    ]);
  });

  test('a staged event removed from the tail is a gap for verify, before and after the rest ships', async () => {
    await stage('tail', 1, 4);
    await sql(`delete from audit_staging where tenant = 'tail' and seq = 4`);
    expect((await verifyAudit(bucket, { tenant: 'tail', control })).problems).toEqual([
      expect.objectContaining({ kind: 'gap', tenant: 'tail', detail: expect.stringContaining('must hold seq 1..4') }),
    ]);
    expect(await shipAudit(control, bucket, { tenant: 'tail', retentionDays, force: true })).toMatchObject({ events: 3, failedTenants: [] });
    expect((await verifyAudit(bucket, { tenant: 'tail', control })).problems).toEqual([
      expect.objectContaining({ kind: 'gap', tenant: 'tail', detail: expect.stringContaining('must hold seq 4..4 (1 events, last shipped 3, next 5), Postgres holds none') }),
    ]);
  });

  test('the shipper loop ships the healthy tenants on every pass and backs off from a failing one, reporting it each time', async () => {
    await stage('backoff-a', 1, 3);
    await sql(`delete from audit_staging where tenant = 'backoff-a' and seq = 1`);
    const intervalMs = 20;
    const retries: number[] = [];
    let shippedB = 0;
    let done: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const loop = startAuditShipper(control, bucket, {
      retentionDays,
      force: true,
      intervalMs,
      onError: (error) => console.error(error),
      onTenantError: (failure, retryInMs) => {
        if (failure.tenant === 'backoff-a') retries.push(retryInMs);
      },
      onPass: () => {
        if (retries.length === 1 && shippedB === 0) void stage('backoff-b', 1, 2).then(() => (shippedB = 2));
        if (retries.length >= 4) done();
      },
    });
    try {
      await finished;
    } finally {
      await loop.stop();
    }
    expect(retries.slice(0, 4)).toEqual([intervalMs, 2 * intervalMs, 4 * intervalMs, 8 * intervalMs]);
    expect(await control.stagedAudit('backoff-b', { limit: 10 })).toEqual([]);
    expect((await verifyAudit(bucket, { tenant: 'backoff-b', control })).problems).toEqual([]);
  });

  test('a pass longer than one lease renews it per batch: another shipper cannot take the tenant mid-pass', async () => {
    await stage('lease-kept', 1, 3);
    let othersClaim: boolean | undefined;
    const result = await shipAudit(control, bucket, {
      tenant: 'lease-kept', retentionDays, force: true, batchEventsMax: 1, leaseMs: 300,
      onConfirmed: (batch) => (batch.batchSeq === 1 ? leaseExpired('lease-kept') : undefined),
      onUploaded: async (batch) => {
        if (batch.batchSeq === 2) othersClaim = await control.claimAuditShipping('lease-kept', 'another-shipper', 60_000);
      },
    });
    expect(othersClaim).toBe(false);
    expect(result).toMatchObject({ batches: 3, events: 3, failedTenants: [] });
  });

  test('a lease lost mid-pass stops that tenant after its confirmed batch, naming the lost lease', async () => {
    await stage('lease-lost', 1, 3);
    const result = await shipAudit(control, bucket, {
      tenant: 'lease-lost', retentionDays, force: true, batchEventsMax: 1, leaseMs: 300,
      onConfirmed: async (batch) => {
        if (batch.batchSeq !== 1) return;
        await leaseExpired('lease-lost');
        expect(await control.claimAuditShipping('lease-lost', 'another-shipper', 60_000)).toBe(true);
      },
    });
    expect(result).toMatchObject({ batches: 1, events: 1 });
    expect(result.failedTenants).toEqual([
      expect.objectContaining({ tenant: 'lease-lost', code: 'conflict', message: expect.stringContaining('lost the audit shipping lease of tenant lease-lost after batch 1') }),
    ]);
    expect((await control.auditBatches('lease-lost')).map((b) => b.batchSeq)).toEqual([1]);
    expect((await control.stagedAudit('lease-lost', { limit: 10 })).map((s) => s.seq)).toEqual([2, 3]);
  });
});
