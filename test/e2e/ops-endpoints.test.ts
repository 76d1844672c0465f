/**
 * /readyz and /metrics of the real built server process (`serve --http`, local mode): the
 * free-space floor fails readiness naming free vs floor, a tenant whose store cannot be opened
 * is listed in /readyz's body (not its status) and counted, and the failure counters and the
 * free-space gauge are exposed.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectNewerHttp } from '../support/mcp-clients.js';
import { parsePrometheusText } from '../ops/prometheus-text.js';
import { startHttpServer, type ServerProcess } from './server-process.js';

let dataDir: string;
let server: ServerProcess | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-e2e-ops-'));
});

afterAll(async () => {
  await server?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

interface ReadyBody {
  status: string;
  checks: Array<{ name: string; ok: boolean; error?: string }>;
  degradedTenants: { count: number; listed: Array<{ tenant: string; state: string; code?: string }> };
}

test('below the free-space floor the server is not ready, naming free vs floor; a tenant that cannot open is listed and counted, not made a server-wide failure', async () => {
  // The local tenant's log directory is a file: its store cannot be opened.
  await mkdir(path.join(dataDir, 'tenants', 'local'), { recursive: true });
  await writeFile(path.join(dataDir, 'tenants', 'local', 'log'), 'not a directory');
  const floorBytes = 2 ** 52; // 4 PiB: more than any test machine has free
  server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir, IOBOXX_DATA_DIR_FREE_BYTES_MIN: String(floorBytes) });

  // The client connects (that needs no store); its first call needs the tenant's store: 503 (unavailable).
  const client = await connectNewerHttp({ url: `${server.url}/mcp` });
  const refusal = await client.callTool('object_get', { id: 'x' }).then(() => undefined, (error: unknown) => error as Error & { status?: number }).finally(() => client.close());
  expect(refusal?.status, String(refusal)).toBe(503);
  const refused = String(refusal);
  expect(refused).toContain('unavailable, retry later');

  const ready = await fetch(`${server.url}/readyz`);
  expect(ready.status).toBe(503);
  const body = (await ready.json()) as ReadyBody;
  const stores = body.checks.find((c) => c.name === 'stores')!;
  expect(stores.ok).toBe(false);
  expect(stores.error).toMatch(new RegExp(`^\\d+ bytes free on the data directory's filesystem, below the floor of ${floorBytes}`));
  expect(body.degradedTenants.count).toBe(1);
  expect(body.degradedTenants.listed).toEqual([expect.objectContaining({ tenant: 'local', state: 'open_failed' })]);

  const families = parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
  const value = (name: string, labels: Record<string, string> = {}) =>
    families.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  expect(value('ioboxx_data_dir_free_bytes')).toBeGreaterThan(0);
  expect(value('ioboxx_data_dir_free_bytes')).toBeLessThan(floorBytes);
  expect(value('ioboxx_tenant_stores_degraded', { state: 'open_failed' })).toBe(1);
  expect(value('ioboxx_tenant_stores_degraded', { state: 'store_failed' })).toBe(0);
  const openFailures = families.get('ioboxx_store_open_failures_total')!.samples.reduce((sum, s) => sum + s.value, 0);
  expect(openFailures).toBeGreaterThanOrEqual(1);
  expect(value('ioboxx_commit_failures_total', { reason: 'fdatasync_failed' })).toBe(0);
  expect(value('ioboxx_access_log_rows_lost_total')).toBeGreaterThanOrEqual(0);
}, 120_000);
