/**
 * The operations endpoints on a real HTTP server (127.0.0.1, port 0): /metrics scraped and read
 * by a strict exposition parser after real commits, /healthz and /readyz, and the per-tenant
 * load guard (429 + Retry-After over HTTP; busy for a flooding tenant while another's calls
 * all succeed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import * as path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dataDirFreeBytesMinDefault, dataDirProbe, healthRouter, runProbes, s3Probe, type ProbeResult, type ReadinessProbe } from '../../server/ops/health.js';
import { DegradedTenants, degradedTenantsListedMax, openFailureRecentMs } from '../../server/ops/degraded-tenants.js';
import { TenantRegistry } from '../../server/tenants/registry.js';
import { statfsFreeBytes } from '../../storage/io/free-bytes.js';
import { openAuditBucket } from '../../storage/audit/audit-bucket.js';
import { s3Service } from '../support/services.js';
import { BusyError, TenantLoadGuard } from '../../server/ops/load-protection.js';
import { requestAdmission } from '../../server/ops/request-admission.js';
import { OpsMetrics } from '../../server/ops/metrics.js';
import { metricsRouter } from '../../server/ops/metrics-route.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { parsePrometheusText } from './prometheus-text.js';
import { asFileLayer, FaultyFileLayer } from '../support/faulty-file-layer.js';
import { WriteNotApplied } from '../../storage/errors.js';
import { manifestFileName } from '../../storage/snapshot/manifest.js';
import { storeOpenFailureCode } from '../../server/tenants/open-refusal.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-http-ops-'));
const secretToken = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2lnbmF0dXJlLXNlY3JldA';
const secretContent = 'patient-record-do-not-leak-4711';
let server: Server;
let base: string;
let draining = false;
let postgresUp = true;
const metrics = new OpsMetrics({ probes: { openTenants: () => 2, storesMemoryBytes: () => 300_000, storesMemoryBytesMax: () => 1_000_000, rowBytes: () => ({ live: 4_096, dead: 512, spare: 65_536 }), auditBacklog: async () => 17, auditLastShippedAtMs: () => Date.now() - 5_000, subscriptionLagMax: () => 3 } });
const rateGuard = new TenantLoadGuard({ ratePerSecond: 1, burst: 2, inFlightMax: 4, queuedMax: 4 }, { onBusy: (_t, limit) => metrics.busyRejection(limit) });

beforeAll(async () => {
  const probes: ReadinessProbe[] = [
    { name: 'stores', check: async () => undefined },
    { name: 'postgres', check: async () => { if (!postgresUp) throw new Error('connect ECONNREFUSED 127.0.0.1:5432'); } },
  ];
  const app = express();
  app.use(healthRouter({ probes, draining: () => draining, probeTimeoutMs: 1000 }));
  app.use(metricsRouter(metrics));
  app.use(requestAdmission({ guard: rateGuard, tenantOf: (req) => req.header('x-test-tenant') ?? undefined }));
  app.post('/mcp', (_req, res) => {
    res.json({ ok: true });
  });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(work, { recursive: true, force: true });
});

describe('/metrics', () => {
  test('after real commits, the exposition parses strictly and carries the engine and server figures, never tokens or contents', async () => {
    const store = await Store.open({ dir: path.join(work, 'metrics-store'), module: counterModule, onBatch: metrics.onBatch });
    const writes = Array.from({ length: 40 }, (_, i) => store.call('put', { id: `o${i}`, type: 'note', n: i, attributes: { text: secretContent } }, testCaller));
    await Promise.all(writes);
    // Then one caller alone: each of its writes is a lone batch of an idle store, synced inline.
    for (let i = 0; i < 3; i++) await store.call('put', { id: `alone${i}`, type: 'note', n: i, attributes: {} }, testCaller);
    await store.close();
    metrics.authFailure('expired');
    metrics.authFailure(`Bearer ${secretToken}`); // a reason outside the closed list
    metrics.subscriptionDrop('buffer_full');

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const families = parsePrometheusText(text);
    const family = (name: string) => {
      const f = families.get(name);
      expect(f, `family ${name}`).toBeDefined();
      return f!;
    };
    const value = (name: string, labels: Record<string, string> = {}) =>
      family(name).samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v) && (Object.keys(labels).length > 0 || !('le' in s.labels)))?.value;

    expect(family('ioboxx_commit_latency_seconds').type).toBe('histogram');
    expect(family('ioboxx_fdatasync_seconds').type).toBe('histogram');
    expect(family('ioboxx_commit_batch_transactions').type).toBe('histogram');
    expect(family('ioboxx_commits_total').type).toBe('counter');
    // Every acknowledged transaction is timed by the store itself (call -> durable acknowledgement).
    expect(family('ioboxx_commit_latency_seconds').samples.find((s) => s.name === 'ioboxx_commit_latency_seconds_count')!.value).toBe(43);
    expect(family('ioboxx_commit_latency_seconds').samples.find((s) => s.name === 'ioboxx_commit_latency_seconds_sum')!.value).toBeGreaterThan(0);
    expect(family('ioboxx_commit_batch_transactions').samples.find((s) => s.name === 'ioboxx_commit_batch_transactions_sum')!.value).toBe(43);
    expect(family('ioboxx_fdatasync_seconds').samples.find((s) => s.name === 'ioboxx_fdatasync_seconds_count')!.value).toBeGreaterThanOrEqual(1);
    expect(value('ioboxx_commits_total')).toBe(43);
    expect(value('ioboxx_commit_batches_synced_inline_total')).toBe(3);
    // The main thread ran (at least these commits and this scrape): its busy time is counted.
    const loopBusySec = value('ioboxx_event_loop_busy_seconds_total')!;
    expect(family('ioboxx_event_loop_busy_seconds_total').type).toBe('counter');
    expect(loopBusySec).toBeGreaterThan(0);
    expect(value('ioboxx_open_tenants')).toBe(2);
    expect(value('ioboxx_stores_memory_bytes')).toBe(300_000);
    expect(value('ioboxx_stores_memory_budget_bytes')).toBe(1_000_000);
    expect(value('ioboxx_row_bytes', { state: 'live' })).toBe(4_096);
    expect(value('ioboxx_row_bytes', { state: 'dead' })).toBe(512);
    expect(value('ioboxx_row_bytes', { state: 'spare' })).toBe(65_536);
    expect(value('ioboxx_audit_backlog_events')).toBe(17);
    expect(value('ioboxx_audit_last_shipped_age_seconds')).toBeGreaterThanOrEqual(5);
    expect(value('ioboxx_subscription_lag_transactions')).toBe(3);
    expect(value('ioboxx_subscription_drops_total', { reason: 'buffer_full' })).toBe(1);
    expect(value('ioboxx_auth_failures_total', { reason: 'expired' })).toBe(1);
    expect(value('ioboxx_auth_failures_total', { reason: 'other' })).toBe(1);
    expect(value('ioboxx_auth_failures_total', { reason: 'bad_signature' })).toBe(0);

    for (const secret of [secretToken, 'Bearer', secretContent, 'eyJ', 'o39']) expect(text).not.toContain(secret);
    const again = parsePrometheusText(await (await fetch(`${base}/metrics`)).text());
    expect(again.get('ioboxx_event_loop_busy_seconds_total')!.samples[0]!.value).toBeGreaterThanOrEqual(loopBusySec);
    for (const f of families.values()) for (const s of f.samples) for (const v of Object.values(s.labels)) expect(v).not.toContain(secretToken);
  });
});

test('failures are counted by reason: a write the disk refused, a snapshot not written, a failed fdatasync, a refused open, lost access rows', async () => {
  const counted = new OpsMetrics({ processMetrics: false });
  const faults = new FaultyFileLayer();
  const dir = path.join(work, 'failing-store');
  const store = await Store.open({ dir, module: counterModule, fileLayer: asFileLayer(faults), snapshotEveryTx: 1, onBackgroundError: counted.storeError });
  faults.enospcWrites = 1;
  faults.enospcDurableWrites.add(manifestFileName);
  await expect(store.call('put', { id: 'refused', type: 'note', n: 0, attributes: {} }, testCaller)).rejects.toBeInstanceOf(WriteNotApplied);
  await store.call('put', { id: 'kept', type: 'note', n: 1, attributes: {} }, testCaller); // its background snapshot fails
  await expect.poll(async () => parsePrometheusText((await counted.exposition()).text).get('ioboxx_snapshot_failures_total')!.samples.find((s) => s.labels['reason'] === 'write_failed')!.value).toBe(1);
  faults.datasyncFailures = 1;
  await expect(store.call('put', { id: 'unsynced', type: 'note', n: 2, attributes: {} }, testCaller)).rejects.toBeInstanceOf(WriteNotApplied);
  const held = await Store.open({ dir, module: counterModule }).then(() => undefined, (error: unknown) => error);
  counted.storeOpenFailure(storeOpenFailureCode(held));
  counted.storeOpenFailure('ENOSPC');
  counted.accessLogRowsLost(3);
  counted.failedStoreReopen();
  await store.close();

  const families = parsePrometheusText((await counted.exposition()).text);
  const value = (name: string, labels: Record<string, string> = {}) =>
    families.get(name)!.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))!.value;
  expect(families.get('ioboxx_commit_failures_total')!.type).toBe('counter');
  expect(value('ioboxx_commit_failures_total', { reason: 'write_failed' })).toBe(1);
  expect(value('ioboxx_commit_failures_total', { reason: 'fdatasync_failed' })).toBe(1);
  expect(value('ioboxx_commit_failures_total', { reason: 'files_deleted' })).toBe(0);
  expect(value('ioboxx_snapshot_failures_total', { reason: 'free_space_low' })).toBe(0);
  expect(value('ioboxx_store_open_failures_total', { code: 'conflict' })).toBe(1); // its LOCK is held
  expect(value('ioboxx_store_open_failures_total', { code: 'ENOSPC' })).toBe(1);
  expect(value('ioboxx_store_open_failures_total', { code: 'EIO' })).toBe(0);
  expect(value('ioboxx_access_log_rows_lost_total')).toBe(3);
  expect(value('ioboxx_failed_store_reopens_total')).toBe(1);
});

test('with Postgres down the scrape still answers every metric: the audit backlog is NaN and control_plane_up is 0', async () => {
  const down = new OpsMetrics({
    processMetrics: false,
    probes: {
      openTenants: () => 1,
      auditBacklog: async () => { throw new Error('connect ECONNREFUSED 127.0.0.1:5432'); },
      controlPlaneUp: async () => false,
    },
  });
  const families = parsePrometheusText((await down.exposition()).text);
  expect(families.get('ioboxx_audit_backlog_events')!.samples[0]!.value).toBeNaN();
  expect(families.get('ioboxx_control_plane_up')!.samples[0]!.value).toBe(0);
  expect(families.get('ioboxx_open_tenants')!.samples[0]!.value).toBe(1);
  const up = new OpsMetrics({ processMetrics: false, probes: { controlPlaneUp: () => true } });
  expect(parsePrometheusText((await up.exposition()).text).get('ioboxx_control_plane_up')!.samples[0]!.value).toBe(1);
});

test('with Postgres stalled (its query never answers) the scrape still answers every metric: the audit backlog is NaN', async () => {
  const stalled = new OpsMetrics({
    processMetrics: false,
    probes: { openTenants: () => 1, auditBacklog: () => new Promise<number>(() => undefined), controlPlaneUp: async () => false },
  });
  const families = parsePrometheusText((await stalled.exposition()).text);
  expect(families.get('ioboxx_audit_backlog_events')!.samples[0]!.value).toBeNaN();
  expect(families.get('ioboxx_control_plane_up')!.samples[0]!.value).toBe(0);
  expect(families.get('ioboxx_open_tenants')!.samples[0]!.value).toBe(1);
}, 15_000); // a scrape that waits for the stalled probe never ends: well past Prometheus's own 10 s

describe('tenants in trouble and free space', () => {
  /** On every interface: `url` is reached over loopback, `outsideUrl` over this machine's first non-loopback IPv4 address. */
  async function serveHealth(options: Parameters<typeof healthRouter>[0]): Promise<{ url: string; outsideUrl: () => string; close: () => Promise<void> }> {
    const app = express();
    app.use(healthRouter(options));
    const listening = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '0.0.0.0', () => resolve(s));
    });
    const port = (listening.address() as AddressInfo).port;
    const outsideUrl = () => {
      const outside = Object.values(networkInterfaces()).flat().find((address) => address?.family === 'IPv4' && !address.internal)?.address;
      if (outside === undefined) throw new Error('this test calls /readyz from a non-loopback IPv4 address, and the machine has none');
      return `http://${outside}:${port}/readyz`;
    };
    return { url: `http://127.0.0.1:${port}/readyz`, outsideUrl, close: () => new Promise((resolve) => listening.close(() => resolve())) };
  }

  test('a failed tenant store and a refused open are listed in /readyz and counted, and the server stays ready', async () => {
    const faults = new FaultyFileLayer();
    const registry = new TenantRegistry<{ tenant: string; store: Store; close(): Promise<void> }>({
      dataDir: path.join(work, 'degraded'),
      open: async (tenant, dir) => {
        if (tenant === 'broken') throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        const store = await Store.open({ dir, module: counterModule, fileLayer: asFileLayer(faults) });
        return { tenant, store, close: () => store.close() };
      },
      observe: (event) => degraded.observe(event),
    });
    const degraded = new DegradedTenants(() => registry.openStores().filter((m) => m.store.failed).map((m) => m.tenant));
    const counted = new OpsMetrics({ processMetrics: false, probes: { degradedTenants: () => degraded.counts() } });
    await registry.withTenant('healthy', (m) => m.store.call('put', { id: 'a', type: 'note', n: 0, attributes: {} }, testCaller));
    await registry.withTenant('failing', async () => undefined); // open first: its fdatasync is the commit's
    faults.datasyncFailures = 1;
    await expect(registry.withTenant('failing', (m) => m.store.call('put', { id: 'a', type: 'note', n: 0, attributes: {} }, testCaller))).rejects.toBeInstanceOf(WriteNotApplied);
    await expect(registry.withTenant('broken', async () => undefined)).rejects.toMatchObject({ code: 'unavailable' });
    const health = await serveHealth({ probes: [{ name: 'stores', check: async () => undefined }], degradedTenants: () => degraded.report() });
    try {
      const res = await fetch(health.url);
      expect(res.status).toBe(200); // one tenant's trouble does not take the server out of the balancer
      const body = (await res.json()) as { status: string; degradedTenants: { count: number; listed: unknown[] } };
      expect(body.status).toBe('ready');
      expect(body.degradedTenants.count).toBe(2);
      expect(body.degradedTenants.listed).toEqual([
        { tenant: 'failing', state: 'store_failed' },
        { tenant: 'broken', state: 'open_failed', code: 'ENOSPC', atMs: expect.any(Number) },
      ]);
      // From elsewhere (a balancer, the network): the states and codes, never the tenant ids.
      const outside = await fetch(health.outsideUrl());
      expect(outside.status).toBe(200);
      const withoutIds = { count: 2, listed: [{ state: 'store_failed' }, { state: 'open_failed', code: 'ENOSPC', atMs: expect.any(Number) }] };
      expect(((await outside.json()) as { degradedTenants: unknown }).degradedTenants).toEqual(withoutIds);
      // Nor through a proxy on this machine (over loopback, for whoever asked it).
      const proxied = await fetch(health.url, { headers: { 'x-forwarded-for': '203.0.113.9' } });
      expect(((await proxied.json()) as { degradedTenants: unknown }).degradedTenants).toEqual(withoutIds);
      const families = parsePrometheusText((await counted.exposition()).text);
      const gauge = families.get('ioboxx_tenant_stores_degraded')!;
      expect(gauge.type).toBe('gauge');
      expect(gauge.samples.map((x) => [x.labels['state'], x.value])).toEqual([['store_failed', 1], ['open_failed', 1]]);
    } finally {
      await health.close();
      await registry.close();
    }
    // Closed, the failed store is no longer listed; the refused open stays for openFailureRecentMs.
    expect(degraded.report().listed).toEqual([expect.objectContaining({ tenant: 'broken' })]);
  });

  test('the degraded list is bounded, and a failed open is forgotten once the tenant opens or openFailureRecentMs has passed', () => {
    let nowMs = 1_000_000;
    const degraded = new DegradedTenants(() => [], () => nowMs);
    for (let i = 0; i < degradedTenantsListedMax + 5; i++) degraded.observe({ kind: 'open_failed', tenant: `t${i}`, error: new Error('x') });
    const report = degraded.report();
    expect(report.count).toBe(degradedTenantsListedMax + 5);
    expect(report.listed).toHaveLength(degradedTenantsListedMax);
    expect(report.listed[0]).toMatchObject({ tenant: `t${degradedTenantsListedMax + 4}`, state: 'open_failed' }); // newest first
    degraded.observe({ kind: 'opened', tenant: `t${degradedTenantsListedMax + 4}` });
    expect(degraded.counts().open_failed).toBe(degradedTenantsListedMax + 4);
    nowMs += openFailureRecentMs + 1;
    expect(degraded.counts()).toEqual({ store_failed: 0, open_failed: 0 });
  });

  test('below the free-space floor /readyz answers 503 naming free vs floor; the gauge reads statfs at scrape time', async () => {
    let freeBytes = dataDirFreeBytesMinDefault;
    const probe = dataDirProbe(work, { freeBytesOf: async () => freeBytes });
    const health = await serveHealth({ probes: [probe] });
    try {
      expect((await fetch(health.url)).status).toBe(200);
      freeBytes = dataDirFreeBytesMinDefault - 1;
      const res = await fetch(health.url);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { checks: ProbeResult[] };
      expect(body.checks[0]).toMatchObject({ name: 'stores', ok: false });
      expect(body.checks[0]!.error).toContain(`${dataDirFreeBytesMinDefault - 1} bytes free on the data directory's filesystem, below the floor of ${dataDirFreeBytesMinDefault}`);
    } finally {
      await health.close();
    }
    const real = new OpsMetrics({ processMetrics: false, probes: { dataDirFreeBytes: () => statfsFreeBytes(work) } });
    const free = parsePrometheusText((await real.exposition()).text).get('ioboxx_data_dir_free_bytes')!;
    expect(free.type).toBe('gauge');
    expect(free.samples[0]!.value).toBeGreaterThan(0);
    const failing = new OpsMetrics({ processMetrics: false, probes: { dataDirFreeBytes: () => statfsFreeBytes(path.join(work, 'no-such-dir')) } });
    expect(parsePrometheusText((await failing.exposition()).text).get('ioboxx_data_dir_free_bytes')!.samples[0]!.value).toBeNaN();
  });
});

test('the S3 readiness probe names the bucket and what its HeadBucket answered', async () => {
  const s3 = s3Service();
  const missing = openAuditBucket({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket: `ioboxx-missing-${process.pid}` });
  const [result] = await runProbes([s3Probe(missing)]);
  expect(result).toMatchObject({ name: 's3', ok: false, error: `HeadBucket ioboxx-missing-${process.pid}: HTTP 404 (no such bucket)` });
});

test('the strict parser refuses what Prometheus would refuse', () => {
  expect(() => parsePrometheusText('x 1\n')).toThrow(/before any TYPE/);
  expect(() => parsePrometheusText('# TYPE x gauge\nx{a="1} 1\n')).toThrow(/unterminated/);
  expect(() => parsePrometheusText('# TYPE x gauge\nx 1\nx 2\n')).toThrow(/twice/);
  expect(() => parsePrometheusText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/decrease/);
  expect(() => parsePrometheusText('# TYPE x gauge\nx one\n')).toThrow(/bad value/);
});

describe('/healthz and /readyz', () => {
  test('alive always; ready only when every probe answers and not draining, naming the failing probe', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: [{ name: 'stores', ok: true }, { name: 'postgres', ok: true }] });

    postgresUp = false;
    const down = await fetch(`${base}/readyz`);
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ status: 'not_ready', checks: [{ name: 'stores', ok: true }, { name: 'postgres', ok: false, error: expect.stringContaining('ECONNREFUSED') }] });
    expect((await fetch(`${base}/healthz`)).status).toBe(200); // a dependency outage is not death
    postgresUp = true;

    draining = true;
    const drainingRes = await fetch(`${base}/readyz`);
    expect(drainingRes.status).toBe(503);
    expect(await drainingRes.json()).toMatchObject({ status: 'draining' });
    draining = false;
  });
});

describe('load protection', () => {
  test('past its rate a tenant gets 429 with Retry-After and a retryable busy error; another tenant is unaffected', async () => {
    const post = (tenant: string) => fetch(`${base}/mcp`, { method: 'POST', headers: { 'x-test-tenant': tenant } });
    expect((await post('rate-a')).status).toBe(200);
    expect((await post('rate-a')).status).toBe(200);
    const refused = await post('rate-a');
    expect(refused.status).toBe(429);
    const body = (await refused.json()) as { error: { data: { code: string; limit: string; retryAfterMs: number } } };
    expect(body).toMatchObject({ error: { data: { code: 'busy', limit: 'rate' } } });
    // The refusal was held for (most of) the wait; Retry-After says what is left of it.
    expect(refused.headers.get('retry-after')).toBe(String(Math.ceil(body.error.data.retryAfterMs / 1000)));
    expect((await post('rate-b')).status).toBe(200);
    const scraped = parsePrometheusText(await (await fetch(`${base}/metrics`)).text());
    expect(scraped.get('ioboxx_busy_rejections_total')!.samples.find((s) => s.labels.limit === 'rate')!.value).toBeGreaterThanOrEqual(1);
  });

  test('a flooding tenant gets busy errors while every call of the other tenant succeeds', async () => {
    const flood = await Store.open({ dir: path.join(work, 'flood'), module: counterModule });
    const polite = await Store.open({ dir: path.join(work, 'polite'), module: counterModule });
    const guard = new TenantLoadGuard({ inFlightMax: 16, queuedMax: 32, ratePerSecond: 100_000, burst: 100_000 });
    try {
      const flooding = Array.from({ length: 2000 }, (_, i) =>
        guard.run('flood', () => flood.call('bump', { id: `c${i % 10}`, by: 1 }, testCaller)).then(() => 'ok' as const, (e: unknown) => e));
      const politeResults: unknown[] = [];
      for (let i = 0; i < 50; i++) {
        politeResults.push(await guard.run('polite', () => polite.call('put', { id: `p${i}`, type: 'note', n: i }, testCaller)).then(() => 'ok', (e: unknown) => e));
      }
      const floodResults = await Promise.all(flooding);
      const busy = floodResults.filter((r) => r instanceof BusyError);
      expect(busy.length).toBeGreaterThan(0);
      expect(busy.every((e) => (e as BusyError).code === 'busy' && (e as BusyError).retryAfterMs > 0)).toBe(true);
      expect(floodResults.filter((r) => r !== 'ok' && !(r instanceof BusyError))).toEqual([]);
      expect(politeResults.filter((r) => r !== 'ok')).toEqual([]);
      expect(guard.stats('flood')).toMatchObject({ inFlight: 0, queued: 0 });
    } finally {
      await flood.close();
      await polite.close();
    }
  });
});
