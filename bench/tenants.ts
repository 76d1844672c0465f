/**
 * Issue 4's benchmark: what identity and tenancy cost.
 * - Per-request authentication overhead with a cached JWKS: p50/p99 of an authenticated
 *   `object_get` over Streamable HTTP (a real server process trusting the test OIDC issuer,
 *   Keycloak-shaped RS256 tokens) minus the same call to a local-mode server (no auth), both
 *   driven the same way in the same run. Beside it, the verification alone in process.
 * - Open on demand: a tenant store holding 10,000 objects opened cold through the tenant
 *   registry (a fresh registry each time: recovery from snapshot + log, vector index rebuilt).
 * - Memory per open idle tenant: RSS and heap growth after opening N small tenants, over N.
 * Peers: none measured here (targets from the issue: overhead p50 <= 0.1 ms, cold open <= 50 ms).
 */
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createAuthenticator } from '../server/auth/authenticator.js';
import { TenantRegistry } from '../server/tenants/registry.js';
import { openTenantMemory } from '../tools/index.js';
import type { TenantMemory } from '../tools/memory.js';
import { startHttpServer } from '../test/e2e/server-process.js';
import { authConfigForIssuer, oidcEnvForIssuer, startOidcIssuer } from '../test/support/oidc-issuer.js';
import type { Bench, BenchContext } from './bench.js';
import { timeToolCalls } from './mcp-calls.js';
import { populateTenant } from './mcp-ours.js';
import { nowMs, Samples } from './stats.js';

const coldOpenObjects = 10_000;
const authTenant = 'acme';

interface Plan {
  readonly readCalls: number;
  readonly budgetMs: number;
  readonly verifyCalls: number;
  readonly coldOpens: number;
  readonly idleTenants: number;
}

function planOf(ctx: BenchContext): Plan {
  return ctx.quick
    ? { readCalls: 200, budgetMs: 3_000, verifyCalls: 500, coldOpens: 3, idleTenants: 20 }
    : { readCalls: 2_000, budgetMs: 15_000, verifyCalls: 5_000, coldOpens: 10, idleTenants: 200 };
}

/** p50/p99 of object_get over HTTP against a server process started with `env`. */
async function timedReads(env: Record<string, string>, headers: Record<string, string>, plan: Plan) {
  const server = await startHttpServer(env);
  const client = new Client({ name: 'ioboxx-memory-bench', version: '0.1.0' });
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { requestInit: { headers } }));
    const put = await client.callTool({ name: 'object_put', arguments: { id: 'read-me', type: 'note', attributes: { text: 'bench' } } });
    if (put.isError) throw new Error(`object_put failed: ${JSON.stringify(put.content)}`);
    // Warm-up: JIT, the JWKS fetched and cached, the store open.
    for (let i = 0; i < 50; i++) await client.callTool({ name: 'object_get', arguments: { id: 'read-me' } });
    return await timeToolCalls(client, { count: plan.readCalls, budgetMs: plan.budgetMs, makeCall: () => ({ name: 'object_get', arguments: { id: 'read-me' } }) });
  } finally {
    await client.close().catch(() => undefined);
    await server.stop();
  }
}

async function authOverhead(ctx: BenchContext, plan: Plan): Promise<void> {
  const idp = await startOidcIssuer();
  try {
    const token = await idp.token({ organizations: [authTenant], realmRoles: ['memory-writer'], ttlS: 3_600 });
    ctx.progress('authenticated reads (token mode), then unauthenticated reads (local mode)');
    const authed = await timedReads({ IOBOXX_DATA_DIR: path.join(ctx.dataDir, 'auth'), ...oidcEnvForIssuer(idp) }, { authorization: `Bearer ${token}` }, plan);
    const local = await timedReads({ IOBOXX_DATA_DIR: path.join(ctx.dataDir, 'local') }, {}, plan);
    ctx.emit({ metric: `http object_get p50, bearer token (${authed.latency.count} calls)`, unit: 'ms', better: 'lower', ours: authed.latency.p50Ms });
    ctx.emit({ metric: `http object_get p50, local mode (${local.latency.count} calls)`, unit: 'ms', better: 'lower', ours: local.latency.p50Ms });
    ctx.emit({ metric: 'auth overhead p50 (bearer - local)', unit: 'ms', better: 'lower', ours: authed.latency.p50Ms - local.latency.p50Ms });
    ctx.emit({ metric: 'auth overhead p99 (bearer - local)', unit: 'ms', better: 'lower', ours: authed.latency.p99Ms - local.latency.p99Ms });

    // The verification alone, in process, JWKS cached after the first call.
    const authenticator = createAuthenticator(authConfigForIssuer(idp));
    await authenticator.authenticate(token, undefined);
    const samples = new Samples();
    for (let i = 0; i < plan.verifyCalls; i++) {
      const t0 = nowMs();
      await authenticator.authenticate(token, undefined);
      samples.add(nowMs() - t0);
    }
    const verify = samples.summary();
    ctx.emit({ metric: `token verify p50, cached JWKS (${verify.count} calls)`, unit: 'ms', better: 'lower', ours: verify.p50Ms });
    ctx.emit({ metric: 'token verify p99, cached JWKS', unit: 'ms', better: 'lower', ours: verify.p99Ms });
  } finally {
    await idp.stop();
  }
}

function registryOver(dataDir: string, openTenantsMax: number): TenantRegistry<TenantMemory> {
  return new TenantRegistry<TenantMemory>({ dataDir, open: (tenant, dir) => openTenantMemory(dir, tenant), openTenantsMax });
}

async function coldOpen(ctx: BenchContext, plan: Plan): Promise<void> {
  const dataDir = path.join(ctx.dataDir, 'cold');
  ctx.progress(`populating a tenant with ${coldOpenObjects.toLocaleString('en-US')} objects`);
  await populateTenant(dataDir, 'big', coldOpenObjects);
  const samples = new Samples();
  for (let i = 0; i < plan.coldOpens; i++) {
    const registry = registryOver(dataDir, 4);
    const t0 = nowMs();
    const lease = await registry.acquire('big');
    samples.add(nowMs() - t0);
    if (lease.store.store.lastOffset < coldOpenObjects - 1) throw new Error(`opened store is at offset ${lease.store.store.lastOffset}`);
    lease.release();
    await registry.close();
  }
  const open = samples.summary();
  ctx.emit({ metric: `cold open p50, 10k-object tenant (${open.count} opens)`, unit: 'ms', better: 'lower', ours: open.p50Ms });
  ctx.emit({ metric: 'cold open max, 10k-object tenant', unit: 'ms', better: 'lower', ours: open.maxMs });
}

async function idleTenantMemory(ctx: BenchContext, plan: Plan): Promise<void> {
  const dataDir = path.join(ctx.dataDir, 'idle');
  await mkdir(dataDir, { recursive: true });
  const tenants = Array.from({ length: plan.idleTenants }, (_, i) => `idle${i}`);
  // Each tenant holds a few objects, as a real one would; written, then closed.
  for (const tenant of tenants) await populateTenant(dataDir, tenant, 10);
  const registry = registryOver(dataDir, plan.idleTenants + 1);
  // Several collections with turns of the loop between: buffers and finalisers of the
  // population step are released lazily, and one gc() alone leaves them in `before`.
  const settle = async () => {
    for (let i = 0; i < 4; i++) {
      ctx.gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  try {
    // One open and close first, so module code, JIT and pools are not counted per tenant.
    (await registry.acquire(tenants[0]!)).release();
    await settle();
    const before = process.memoryUsage();
    for (const tenant of tenants.slice(1)) (await registry.acquire(tenant)).release();
    await settle();
    const after = process.memoryUsage();
    const kib = (bytes: number) => bytes / 1024 / (plan.idleTenants - 1);
    ctx.emit({ metric: `RSS per open idle tenant (${plan.idleTenants - 1} opened)`, unit: 'KiB', better: 'lower', ours: kib(after.rss - before.rss) });
    ctx.emit({ metric: 'heap + external per open idle tenant', unit: 'KiB', better: 'lower', ours: kib(after.heapUsed + after.external - before.heapUsed - before.external) });
  } finally {
    await registry.close();
  }
}

export const tenantsBench: Bench = {
  name: 'tenants',
  description: 'auth overhead per request (bearer vs local mode, HTTP), cold open of a 10k-object tenant, memory per open idle tenant',
  async run(ctx) {
    const plan = planOf(ctx);
    await authOverhead(ctx, plan);
    await coldOpen(ctx, plan);
    await idleTenantMemory(ctx, plan);
  },
};
