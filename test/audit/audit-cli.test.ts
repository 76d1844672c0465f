/**
 * `ioboxx-memory audit ship|verify` as an operator runs them: real processes, real Postgres,
 * real Ceph RGW. verify exits 0 on a whole chain and 1 naming a tampered key.
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import type { AuditBucket } from '../../storage/audit/audit-bucket.js';
import { auditBatchKey } from '../../storage/audit/batch.js';
import { auditCliEnv } from '../support/audit-cli-env.js';
import { freshPostgresDatabase } from '../support/services.js';
import { runProcess, type ProcessOutcome } from '../support/run-process.js';
import { cliNodeArgs } from '../support/cli-entry.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let control: ControlPlane;
let drop: () => Promise<void>;
let bucket: AuditBucket;
let env: Record<string, string>;
let databaseUrl: string;

function cli(args: string[], extraEnv: Record<string, string | undefined> = env): Promise<ProcessOutcome> {
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...extraEnv })) if (v !== undefined) childEnv[k] = v;
  return runProcess(process.execPath, [...cliNodeArgs, ...args], { cwd: root, env: childEnv });
}

beforeAll(async () => {
  const db = await freshPostgresDatabase('auditcli');
  drop = db.drop;
  databaseUrl = db.url;
  control = await openControlPlane({ databaseUrl: db.url });
  ({ bucket, env } = await auditCliEnv(db.url, 'cli'));
});

afterAll(async () => {
  await control?.close();
  await drop?.();
});

test('audit ship sends staged events; audit verify proves them, then names a tampered key and exits 1', async () => {
  await control.stageAudit('cli', [1, 2, 3, 4].map((seq) => ({ source: 'access_log', sourceSeq: seq, event: { seq } })));
  const shipped = await cli(['audit', 'ship', '--json']);
  expect(shipped.stderr).not.toMatch(/^error/m);
  expect(shipped.code).toBe(0);
  expect(JSON.parse(shipped.stdout)).toEqual({ ok: true, batches: 1, events: 4, busyTenants: [], failedTenants: [] });

  const verified = await cli(['audit', 'verify', '--tenant', 'cli']);
  expect(verified.code).toBe(0);
  expect(verified.stdout).toContain('tenant cli: 1 batches, 4 events, through seq 4');
  expect(verified.stdout).toContain('audit verified: chain whole');

  const key = auditBatchKey('cli', 1);
  const forged = Buffer.from('{}');
  await bucket.client.send(new PutObjectCommand({ Bucket: bucket.bucket, Key: key, Body: forged, ContentMD5: createHash('md5').update(forged).digest('base64') }));
  const tampered = await cli(['audit', 'verify', '--tenant', 'cli']);
  expect(tampered.code).toBe(1);
  expect(tampered.stdout).toMatch(new RegExp(`PROBLEM extra_version tenant=cli batch=1 key=${key} version=`));
  // What to do about it, once per kind, under the problems; with --json each problem carries it.
  expect(tampered.stdout).toMatch(/^what to do about extra_version: .*access log/m);
  const json = await cli(['audit', 'verify', '--tenant', 'cli', '--json']);
  expect(json.code).toBe(1);
  const report = JSON.parse(json.stdout) as { ok: boolean; problems: Array<{ kind: string; hint?: string }> };
  expect(report.ok).toBe(false);
  expect(report.problems.find((p) => p.kind === 'extra_version')?.hint).toMatch(/access log/);
});

test('audit ship with a hole in one tenant\'s staging ships the others and exits 1 naming that tenant', async () => {
  const stage = (tenant: string) => control.stageAudit(tenant, [1, 2, 3].map((seq) => ({ source: 'access_log', sourceSeq: seq, event: { seq } })));
  await stage('cli-holed');
  await stage('cli-whole');
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query(`delete from audit_staging where tenant = 'cli-holed' and seq = 2`).finally(() => client.end());
  const shipped = await cli(['audit', 'ship']);
  expect(shipped.code).toBe(1);
  expect(shipped.stdout).toContain('shipped 1 batches (3 events)');
  expect(shipped.stderr).toMatch(/^error: audit shipping of tenant cli-holed failed \(internal\): audit staging of tenant cli-holed has a hole: seq 2 is missing/m);
  expect(shipped.stderr).toContain('audit close-gap --tenant cli-holed');
  expect(await control.stagedAudit('cli-whole', { limit: 10 })).toEqual([]);

  // The way on: the lost event recorded as such, then the tenant ships and its chain verifies whole.
  const closed = await cli(['audit', 'close-gap', '--tenant', 'cli-holed']);
  expect(closed.code).toBe(0);
  expect(closed.stdout).toBe('tenant cli-holed: seq 2 recorded as lost (audit_hole events in the chain); its shipping goes on\n');
  expect((await cli(['audit', 'ship', '--tenant', 'cli-holed'])).stdout).toContain('shipped 1 batches (3 events)');
  const verified = await cli(['audit', 'verify', '--tenant', 'cli-holed', '--no-stores']);
  expect(verified.stdout).toContain('audit verified: chain whole');
  expect(verified.code).toBe(0);
  // Whole, and saying what it records as lost: an auditor sees the loss in every verify.
  expect(verified.stdout).toContain('note: tenant cli-holed: 1 event recorded lost in the chain (audit close-gap: removed from staging before they shipped): seq 2\n');
  const verifiedJson = JSON.parse((await cli(['audit', 'verify', '--tenant', 'cli-holed', '--no-stores', '--json'])).stdout) as { tenants: unknown[] };
  expect(verifiedJson.tenants).toEqual([expect.objectContaining({ tenant: 'cli-holed', eventsLost: { count: 1, seqs: '2' } })]);
  expect(await control.auditBatches('cli-holed')).toEqual([expect.objectContaining({ firstSeq: 1, lastSeq: 3, count: 3 })]);
  expect(JSON.parse((await cli(['audit', 'close-gap', '--tenant', 'cli-holed', '--json'])).stdout)).toEqual({ ok: true, tenant: 'cli-holed', closed: [] });
});

test('audit ship says why a tenant another shipper holds (a server, or one killed) was left, and does not fail for it', async () => {
  await control.stageAudit('cli-busy', [{ source: 'access_log', sourceSeq: 1, event: { seq: 1 } }]);
  expect(await control.claimAuditShipping('cli-busy', 'a-killed-shipper', 60_000)).toBe(true);
  const shipped = await cli(['audit', 'ship', '--tenant', 'cli-busy']);
  expect(shipped.code).toBe(0);
  expect(shipped.stdout).toBe('shipped 0 batches (0 events); busy: cli-busy (another shipper holds its lease: a server running ships them, or one stopped within the last 60 s left it; run again after that)\n');
  await control.releaseAuditShipping('cli-busy', 'a-killed-shipper');
});

test('audit ship without S3 configured fails with a clear message; S3 settings without S3_ENDPOINT are refused naming it', async () => {
  const result = await cli(['audit', 'ship'], { ...env, S3_ENDPOINT: undefined, S3_BUCKET: undefined, S3_REGION: undefined });
  expect(result.code).toBe(2);
  expect(result.stderr).toContain('S3 is not configured');
  // A region (or bucket) without the endpoint was ignored as if S3 were not meant: now a configuration problem naming the endpoint.
  const partial = await cli(['audit', 'ship'], { ...env, S3_ENDPOINT: undefined, S3_BUCKET: undefined });
  expect(partial.code, partial.stderr).toBe(2);
  expect(partial.stderr).toContain('S3_ENDPOINT: required when S3_REGION is set');
});

test('audit ship or verify against a bucket that does not exist names the bucket and the HTTP status, with --json one object', async () => {
  const missing = `ioboxx-missing-${process.pid}`;
  for (const command of ['ship', 'verify']) {
    const result = await cli(['audit', command, '--json'], { ...env, S3_BUCKET: missing });
    expect(result.code, result.stderr).toBe(1);
    const answer = JSON.parse(result.stdout) as { ok: boolean; code: string; message: string; hint: string };
    expect(answer).toMatchObject({ ok: false, code: 'unavailable' });
    expect(answer.message).toContain(`bucket ${missing}`);
    expect(answer.message).toMatch(/HTTP \d{3}/);
    expect(answer.hint).toContain('Object Lock');
  }
});

test('audit verify --tenant refuses what is no tenant id, and says when a tenant has no batch in the bucket', async () => {
  const bad = await cli(['audit', 'verify', '--tenant', '../x']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain('is not a tenant id');
  const none = await cli(['audit', 'verify', '--tenant', 'nobody-here']);
  expect(none.code, none.stderr).toBe(0);
  expect(none.stdout).toContain('tenant nobody-here: no audit batch in the bucket');
});
