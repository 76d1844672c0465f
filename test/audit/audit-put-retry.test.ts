/**
 * The shipper never writes a second version of a batch key: the version could never be deleted
 * (COMPLIANCE), and `audit verify` would name it on every later run. Neither when an upload's
 * answer is lost (the connection reset after the gateway stored the batch: a proxy in front of
 * the real Ceph gateway forwards the first audit PUT, waits for the gateway's answer, and resets
 * the client's connection instead of passing it on), nor when another control plane (a second
 * server with its own database on the same bucket, or this one restored from an older backup)
 * already shipped that batch number.
 */
import { CreateBucketCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { shipAudit } from '../../storage/audit/shipper.js';
import { verifyAudit } from '../../storage/audit/verifier.js';
import { auditBatchKey } from '../../storage/audit/batch.js';
import { freshPostgresDatabase, s3Service } from '../support/services.js';

let control: ControlPlane;
let dropDatabase: () => Promise<void>;
let other: ControlPlane;
let dropOther: () => Promise<void>;
let proxy: http.Server;
let viaProxy: AuditBucket;
/** How many audit PUTs reached the gateway, and how many answers the proxy swallowed. */
const puts = { forwarded: 0, answersLost: 0, toLose: 0 };

beforeAll(async () => {
  const db = await freshPostgresDatabase('auditputretry');
  dropDatabase = db.drop;
  control = await openControlPlane({ databaseUrl: db.url });
  const otherDb = await freshPostgresDatabase('auditputother');
  dropOther = otherDb.drop;
  other = await openControlPlane({ databaseUrl: otherDb.url });
  const s3 = s3Service();
  const target = new URL(s3.endpoint);
  proxy = http.createServer((req, res) => {
    const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        if (req.method === 'PUT' && req.url?.includes('/audit/')) {
          puts.forwarded++;
          if (puts.answersLost < puts.toLose) {
            puts.answersLost++;
            req.socket.destroy();
            return;
          }
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.end(Buffer.concat(chunks));
      });
    });
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const config = { region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const direct = openAuditBucket({ ...config, endpoint: s3.endpoint, bucket: 'unused' });
  const name = `ioboxx-audit-retry-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  await direct.client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }));
  viaProxy = openAuditBucket({ ...config, endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, bucket: name });
}, 60_000);

afterAll(async () => {
  proxy?.close();
  await control?.close();
  await dropDatabase?.();
  await other?.close();
  await dropOther?.();
});

test('an upload stored by the gateway whose answer was lost leaves one version of the key, and the chain verifies whole', async () => {
  await control.stageAudit('lost', [1, 2, 3].map((seq) => ({ source: 'access_log', sourceSeq: seq, event: { seq } })));
  puts.toLose = 1;
  const first = await shipAudit(control, viaProxy, { tenant: 'lost', retentionDays: 1, force: true });
  expect(puts.answersLost).toBe(1);
  // However the shipper learns what happened (a retry, or the next pass), the batch ships once.
  const again = first.batches === 1 ? first : await shipAudit(control, viaProxy, { tenant: 'lost', retentionDays: 1, force: true });
  expect(again).toMatchObject({ batches: 1, events: 3, failedTenants: [] });
  const key = auditBatchKey('lost', 1);
  const listed = await viaProxy.client.send(new ListObjectVersionsCommand({ Bucket: viaProxy.bucket, Prefix: key }));
  expect((listed.Versions ?? []).map((v) => v.Key)).toEqual([key]);
  const report = await verifyAudit(viaProxy, { tenant: 'lost', control });
  expect(report.problems).toEqual([]);
});

test('a batch number another control plane already shipped to the bucket is refused naming the key, not written as a second version', async () => {
  await control.stageAudit('shared', [1, 2].map((seq) => ({ source: 'access_log', sourceSeq: seq, event: { seq } })));
  expect(await shipAudit(control, viaProxy, { tenant: 'shared', retentionDays: 1, force: true })).toMatchObject({ batches: 1, failedTenants: [] });
  await other.stageAudit('shared', [1, 2, 3].map((seq) => ({ source: 'access_log', sourceSeq: seq, event: { seq, other: true } })));
  const refused = await shipAudit(other, viaProxy, { tenant: 'shared', retentionDays: 1, force: true });
  const key = auditBatchKey('shared', 1);
  expect(refused).toMatchObject({ batches: 0, failedTenants: [{ tenant: 'shared', code: 'conflict' }] });
  expect(refused.failedTenants[0]!.message).toContain(key);
  const listed = await viaProxy.client.send(new ListObjectVersionsCommand({ Bucket: viaProxy.bucket, Prefix: key }));
  expect((listed.Versions ?? []).length).toBe(1);
  expect((await verifyAudit(viaProxy, { tenant: 'shared', control })).problems).toEqual([]);
  // The refused events stay staged where they were, for an operator to look into.
  expect((await other.stagedAudit('shared', { limit: 10 })).length).toBe(3);
});
