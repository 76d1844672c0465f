/**
 * Issue 5 through the real server process: `serve --http` in local mode on the real Postgres
 * of the services, configured as against Supabase (DATABASE_URL through the transaction-mode
 * pooler, PgBouncer here, DATABASE_DIRECT_URL straight to Postgres, both with sslmode=require),
 * and the Ceph RADOS Gateway (a bucket with Object Lock), with the Keycloak
 * webhook secret set. Tool calls reach audit staging exactly once and are shipped to S3 in a
 * chain `ioboxx-memory audit verify` proves; a BPMN run completed through tools lands in
 * run_history exactly once; a signed Keycloak admin event is projected into the tenant and a
 * wrongly signed one is refused. The pipeline runs in the background: every wait is a
 * bounded poll on the condition, never a sleep standing in for one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, ListObjectVersionsCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { signKeycloakBody } from '../../storage/control/keycloak-event.js';
import { connectOlderHttp, toolErrorOf, type McpTestClient } from '../support/mcp-clients.js';
import { freshPostgresDatabase, poolerAdmin, s3Service, type FreshDatabase } from '../support/services.js';
import { baseEnv, repoRoot, serverBin, startHttpServer, type ServerProcess } from './server-process.js';
import { runProcess, type ProcessOutcome } from '../support/run-process.js';

const webhookSecret = 'e2e-webhook-secret';
const tenant = 'local';
/** Upper bound on any background step here (shipper ticks every 2 s, closes a batch at 5 s age). */
const pipelineWaitMs = 45_000;
const pollEveryMs = 100;

let dataDir: string;
let database: FreshDatabase;
let sql: pg.Client;
let s3: S3Client;
let bucket: string;
let env: Record<string, string>;
let server: ServerProcess;
let client: McpTestClient;

/** Polls `probe` until it returns a value other than undefined, failing after pipelineWaitMs. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + pipelineWaitMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${pipelineWaitMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}\n${server?.stderr().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, pollEveryMs));
  }
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-e2e-audit-'));
  database = await freshPostgresDatabase('e2eaudit');
  sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
  const service = s3Service();
  s3 = new S3Client({
    endpoint: service.endpoint, region: service.region, forcePathStyle: true,
    credentials: { accessKeyId: service.accessKeyId, secretAccessKey: service.secretAccessKey },
  });
  bucket = `ioboxx-e2e-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  env = {
    IOBOXX_DATA_DIR: dataDir,
    DATABASE_URL: requireTls(database.pooledUrl()),
    DATABASE_DIRECT_URL: requireTls(database.url),
    S3_ENDPOINT: service.endpoint,
    S3_REGION: service.region,
    S3_BUCKET: bucket,
    AWS_ACCESS_KEY_ID: service.accessKeyId,
    AWS_SECRET_ACCESS_KEY: service.secretAccessKey,
    IOBOXX_AUDIT_RETENTION_DAYS: '1',
    IOBOXX_KC_WEBHOOK_SECRET: webhookSecret,
  };
  server = await startHttpServer(env);
  client = await connectOlderHttp({ url: `${server.url}/mcp` });
}, 60_000);

function requireTls(url: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('sslmode', 'require');
  return parsed.toString();
}

afterAll(async () => {
  await client?.close().catch(() => undefined);
  if (server) await server.stop();
  await sql?.end();
  await database?.drop();
  s3?.destroy();
  await rm(dataDir, { recursive: true, force: true });
});

async function call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const result = await client.callTool(name, args);
  if (result.isError === true) throw new Error(`${name}: ${JSON.stringify(toolErrorOf(result))}`);
  return result.structuredContent!;
}

interface ShippedEvent {
  readonly seq: number;
  readonly source: string;
  readonly sourceSeq: number;
  readonly event: { action?: string; target?: string; offset?: number | null; outcome?: string };
}

/** Every event of the tenant's batches in the bucket, read back from S3 (every version). */
async function shippedEvents(ofTenant: string): Promise<ShippedEvent[]> {
  const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: `tenants/${ofTenant}/audit/` }));
  const events: ShippedEvent[] = [];
  for (const version of versions.Versions ?? []) {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: version.Key!, VersionId: version.VersionId! }));
    const batch = JSON.parse(await object.Body!.transformToString()) as { events: ShippedEvent[] };
    events.push(...batch.events);
  }
  return events;
}

function cli(args: readonly string[]): Promise<ProcessOutcome> {
  return runProcess(process.execPath, [serverBin, ...args], { cwd: repoRoot, env: { ...baseEnv(), ...env, IOBOXX_LOG_LEVEL: 'warn' } });
}

async function postWebhook(body: string, signature: string): Promise<number> {
  const response = await fetch(`${server.url}/hooks/keycloak`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-keycloak-signature': signature },
    body,
  });
  await response.arrayBuffer();
  return response.status;
}

describe('the audit pipeline through the real server', () => {
  test('the server writes only JSON log lines on stderr, process warnings (the AWS SDK\'s Node-version notice) included', () => {
    const text = server.stderr();
    const lines = text.split('\n').filter((line) => line.length > 0);
    if (text.length >= 8_000) lines.shift(); // the kept tail may start mid-line
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
  });

  test('each tool call is staged once, shipped to S3 Object Lock once, and audit verify proves the chain', async () => {
    const writes: Array<{ tool: string; offset: number }> = [];
    for (let i = 0; i < 5; i++) {
      const put = await call('object_put', { id: `audited-${i}`, type: 'note', attributes: { i } });
      writes.push({ tool: 'object_put', offset: put['offset'] as number });
    }
    const patch = await call('object_patch', { id: 'audited-0', set: { i: 100 } });
    writes.push({ tool: 'object_patch', offset: patch['offset'] as number });
    for (let i = 0; i < 3; i++) await call('object_get', { id: `audited-${i}` });

    // Staged exactly once: the tenant's access log is staged through its last row and each
    // (source, source_seq) is unique; then shipped: staging empties, batches are confirmed.
    const logged = await eventually('the access log to hold every call', async () => {
      const rows = await shippedOrStagedAccessLog();
      const found = writes.every((w) => rows.some((r) => r.event.offset === w.offset && r.event.target === w.tool));
      const reads = rows.filter((r) => r.event.target === 'object_get').length;
      return found && reads >= 3 ? rows : undefined;
    });
    expect(logged.length).toBeGreaterThanOrEqual(writes.length + 3);
    const shipped = await eventually('the staged events to be shipped', async () => {
      const staged = await sql.query('select count(*)::int as n from audit_staging where tenant = $1', [tenant]);
      const unconfirmed = await sql.query('select count(*)::int as n from audit_batches where tenant = $1 and confirmed_at is null', [tenant]);
      if (staged.rows[0].n !== 0 || unconfirmed.rows[0].n !== 0) return undefined;
      const events = await shippedEvents(tenant);
      return writes.every((w) => events.some((e) => e.event.offset === w.offset)) ? events : undefined;
    });
    for (const write of writes) {
      const matches = shipped.filter((e) => e.source === 'access_log' && e.event.action === 'tools/call' && e.event.target === write.tool && e.event.offset === write.offset);
      expect(matches, `access-log row of ${write.tool} at offset ${write.offset}`).toHaveLength(1);
      expect(matches[0]!.event.outcome).toBe('ok');
    }
    expect(shipped.filter((e) => e.source === 'access_log' && e.event.target === 'object_get').length).toBeGreaterThanOrEqual(3);
    // Exactly once: chain sequences and access-log sequences each appear once, with no gap.
    const seqs = shipped.map((e) => e.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    const sourceSeqs = shipped.filter((e) => e.source === 'access_log').map((e) => e.sourceSeq);
    expect(new Set(sourceSeqs).size).toBe(sourceSeqs.length);
    const batches = await sql.query('select batch_seq, version_id, confirmed_at from audit_batches where tenant = $1 order by batch_seq', [tenant]);
    expect(batches.rows.length).toBeGreaterThan(0);
    for (const row of batches.rows) expect(row.version_id).toBeTruthy();

    const verified = await cli(['audit', 'verify', '--tenant', tenant]);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    expect(verified.stdout).toContain('audit verified: chain whole');
    // The store the live server holds is read too: every row staged so far is in the trail.
    expect(verified.stdout).toMatch(new RegExp(`^store ${tenant}: [1-9]\\d* access-log rows checked against S3 and staging, .* read while process \\d+ holds it$`, 'm'));

    // The server shipped them: its metric says how long ago, not 0 (unwired) nor NaN (none).
    const scraped = await (await fetch(`${server.url}/metrics`)).text();
    const ageLine = scraped.split('\n').find((line) => line.startsWith('ioboxx_audit_last_shipped_age_seconds '));
    const ageSeconds = Number(ageLine?.split(' ')[1]);
    expect(ageSeconds, ageLine).toBeGreaterThan(0);
    expect(ageSeconds, ageLine).toBeLessThan(pipelineWaitMs / 1000 + 60);
  }, 90_000);

  test('a BPMN run completed through tools lands in run_history exactly once', async () => {
    const started = await call('bpmn_start', { definition: 'e2e-approval', start_node: 'start' });
    const instance = started['instance'] as string;
    await call('bpmn_move_token', { instance, token: started['token'], to: 'end' });
    await call('bpmn_complete', { instance, details: { by: 'e2e' } });
    // A second, failed run beside it: each run is its own row.
    const other = await call('bpmn_start', { definition: 'e2e-approval', start_node: 'start' });
    await call('bpmn_fail', { instance: other['instance'], reason: 'rejected' });

    const rows = await eventually('both runs in run_history', async () => {
      const result = await sql.query('select run_id, kind, definition, outcome from run_history where tenant = $1 and definition = $2 order by outcome', [tenant, 'e2e-approval']);
      return result.rows.length >= 2 ? result.rows : undefined;
    });
    expect(rows).toEqual([
      { run_id: instance, kind: 'bpmn', definition: 'e2e-approval', outcome: 'completed' },
      { run_id: other['instance'], kind: 'bpmn', definition: 'e2e-approval', outcome: 'failed' },
    ]);
    // Later drains (driven by more writes) never insert it again.
    await call('object_put', { type: 'note', attributes: { after: 'runs' } });
    await eventually('the write after the runs to be staged', async () => {
      const result = await sql.query(`select count(*)::int as n from audit_sources where tenant = $1 and source = 'access_log' and staged_through > 0`, [tenant]);
      return result.rows[0].n > 0 ? true : undefined;
    });
    const again = await sql.query('select count(*)::int as n from run_history where tenant = $1 and run_id = $2', [tenant, instance]);
    expect(again.rows[0].n).toBe(1);
  }, 60_000);

  test('signed Keycloak events (a registration, then an admin membership event) are projected into the tenant; a wrong signature is refused 401 and lands nothing', async () => {
    // Keycloak's organization-aware registration names the organization in its details.
    const registration = JSON.stringify({
      id: 'e2e-org-ev-0', time: Date.now(), type: 'REGISTER', realmId: 'e2e', clientId: 'account', userId: 'u-e2e',
      details: { organization: tenant, username: 'grace', email: 'grace@example.test' },
    });
    const organization = JSON.stringify({
      id: 'e2e-org-ev-1', time: Date.now(), realmId: 'e2e', operationType: 'CREATE', resourceType: 'ORGANIZATION',
      resourcePath: 'organizations/org-local', representation: JSON.stringify({ id: 'org-local', alias: tenant, name: 'Local' }),
    });
    const membership = JSON.stringify({
      id: 'e2e-org-ev-2', time: Date.now(), realmId: 'e2e', operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP',
      resourcePath: 'organizations/org-local/members/u-e2e', representation: JSON.stringify({ id: 'u-e2e', username: 'grace', email: 'grace@example.test' }),
    });
    const forged = JSON.stringify({
      id: 'e2e-org-ev-3', time: Date.now(), realmId: 'e2e', operationType: 'CREATE', resourceType: 'ORGANIZATION_MEMBERSHIP',
      resourcePath: 'organizations/org-local/members/u-mallory', representation: JSON.stringify({ id: 'u-mallory', username: 'mallory' }),
    });
    // Until Postgres is connected the hook answers 503 (Keycloak retries): retry on that only.
    const landed = await eventually('the webhook to accept the organization event', async () => {
      const status = await postWebhook(organization, signKeycloakBody(organization, webhookSecret));
      return status === 503 ? undefined : status;
    });
    expect(landed).toBe(202);
    expect(await postWebhook(registration, signKeycloakBody(registration, webhookSecret))).toBe(202);
    expect(await postWebhook(membership, signKeycloakBody(membership, webhookSecret))).toBe(202);
    expect(await postWebhook(forged, signKeycloakBody(forged, 'not-the-secret'))).toBe(401);
    expect(await postWebhook(forged, 'sha256=00')).toBe(401);

    const user = await eventually('the user and the membership to be projected', async () => {
      const result = await client.callTool('kc_user_get', { user_id: 'u-e2e' });
      const memberships = result.structuredContent?.['memberships'] as unknown[] | undefined;
      return result.isError !== true && memberships !== undefined && memberships.length > 0 ? result.structuredContent! : undefined;
    });
    expect(user).toMatchObject({ user_id: 'u-e2e', username: 'grace', email: 'grace@example.test' });
    expect(user['memberships']).toEqual([{ kind: 'organization', scope_id: 'org-local', scope_name: null }]);
    // The projector marks a landing projected just after applying it: wait for the mark.
    const landings = await eventually('every landing marked projected', async () => {
      const result = await sql.query(`select dedup_key, projected_at from kc_event_landing where dedup_key like 'id:e2e-org-ev-%' order by dedup_key`);
      return result.rows.every((r) => r.projected_at !== null) ? result : undefined;
    });
    expect(landings.rows.map((r) => r.dedup_key)).toEqual(['id:e2e-org-ev-0', 'id:e2e-org-ev-1', 'id:e2e-org-ev-2']);
    const mallory = await client.callTool('kc_user_get', { user_id: 'u-mallory' });
    expect(toolErrorOf(mallory)?.code).toBe('not_found');
    const users = await call('kc_users_list', {});
    expect((users['users'] as Array<{ user_id: string }>).map((u) => u.user_id)).toEqual(['u-e2e']);
    // The refusals are audited too, as server-level events.
    await eventually('the two refused webhook calls in the audit trail', async () => {
      const staged = await sql.query(`select event from audit_staging where tenant = '_server'`);
      const events = [...staged.rows.map((r) => r.event as ShippedEvent['event']), ...(await shippedEvents('_server')).map((e) => e.event)];
      const refusals = events.filter((e) => e.target === '/hooks/keycloak' && e.outcome === '401');
      return refusals.length >= 2 ? refusals : undefined;
    });
  }, 60_000);

  test('the server\'s statements went through the pooler, over TLS', async () => {
    const name = new URL(database.url).pathname.slice(1);
    const stats = await poolerAdmin((admin) => admin.query('show stats'));
    const ours = stats.rows.find((r: { database: string }) => r.database === name) as { total_xact_count: string } | undefined;
    expect(Number(ours?.total_xact_count ?? 0)).toBeGreaterThan(0);
    const clients = await poolerAdmin((admin) => admin.query('show clients'));
    const serverSessions = clients.rows.filter((r: { database: string }) => r.database === name);
    expect(serverSessions.length).toBeGreaterThan(0);
    expect(serverSessions.every((r: { tls: string }) => r.tls !== '')).toBe(true);
  });
});

/** Access-log events of the tenant wherever they are now: still staged, or already in S3. */
async function shippedOrStagedAccessLog(): Promise<ShippedEvent[]> {
  const staged = await sql.query(`select seq::int, source, source_seq::int as "sourceSeq", event from audit_staging where tenant = $1 and source = 'access_log'`, [tenant]);
  const inS3 = await shippedEvents(tenant);
  return [...(staged.rows as ShippedEvent[]), ...inS3.filter((e) => e.source === 'access_log')];
}
