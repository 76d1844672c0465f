/**
 * Issue 4's benchmark: what identity and tenancy cost.
 * - Per-request authentication overhead with a cached JWKS: p50/p99 of an authenticated
 *   `object_get` over Streamable HTTP (a real server process trusting the test OIDC issuer,
 *   Keycloak-shaped RS256 tokens) minus the same call to a local-mode server (no auth), both
 *   driven the same way in the same run. Beside it, the verification alone in process.
 * - Open on demand: a tenant store holding 10,000 objects opened cold through the tenant
 *   registry (a fresh registry each time: recovery from snapshot + log, vector index rebuilt).
 * - Memory per open idle tenant: heap + external growth after opening N small tenants, over N.
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
import { populateTenant } from './mcp-ours.js';
import { nowMs, Samples } from './stats.js';

const coldOpenObjects = 10_000;
const authTenant = 'acme';

interface Plan {
  readonly readCalls: number;
  readonly verifyCalls: number;
  readonly coldOpens: number;
  readonly idleTenants: number;
}

function planOf(ctx: BenchContext): Plan {
  return ctx.quick
    ? { readCalls: 200, verifyCalls: 500, coldOpens: 3, idleTenants: 20 }
    : { readCalls: 2_000, verifyCalls: 5_000, coldOpens: 10, idleTenants: 200 };
}

/** A server process with one connected SDK 1.x client that has written the object it reads. */
async function readerOf(env: Record<string, string>, headers: Record<string, string>) {
  const server = await startHttpServer(env);
  const client = new Client({ name: 'ioboxx-memory-bench', version: '0.1.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { requestInit: { headers } }));
  const put = await client.callTool({ name: 'object_put', arguments: { id: 'read-me', type: 'note', attributes: { text: 'bench' } } });
  if (put.isError) throw new Error(`object_put failed: ${JSON.stringify(put.content)}`);
  // Warm-up: JIT, the JWKS fetched and cached, the store open.
  for (let i = 0; i < 50; i++) await client.callTool({ name: 'object_get', arguments: { id: 'read-me' } });
  return {
    client,
    close: async () => {
      await client.close().catch(() => undefined);
      await server.stop();
    },
  };
}

/** Rounds alternate between the two servers, so load on the machine falls on both alike. */
const overheadRounds = 10;

async function authOverhead(ctx: BenchContext, plan: Plan): Promise<void> {
  const idp = await startOidcIssuer();
  try {
    const token = await idp.token({ organizations: [authTenant], realmRoles: ['memory-writer'], ttlS: 3_600 });
    ctx.progress('authenticated reads (token mode) and unauthenticated reads (local mode), interleaved');
    const bearer = await readerOf({ IOBOXX_DATA_DIR: path.join(ctx.dataDir, 'auth'), ...oidcEnvForIssuer(idp) }, { authorization: `Bearer ${token}` });
    const local = await readerOf({ IOBOXX_DATA_DIR: path.join(ctx.dataDir, 'local') }, {});
    const reads = { bearer: new Samples(), local: new Samples() };
    try {
      const perRound = Math.ceil(plan.readCalls / overheadRounds);
      for (let round = 0; round < overheadRounds; round++) {
        for (const [which, reader] of [['bearer', bearer], ['local', local]] as const) {
          for (let i = 0; i < perRound; i++) {
            const t0 = nowMs();
            const result = await reader.client.callTool({ name: 'object_get', arguments: { id: 'read-me' } });
            reads[which].add(nowMs() - t0);
            if (result.isError) throw new Error(`object_get failed (${which}): ${JSON.stringify(result.content)}`);
          }
        }
      }
    } finally {
      await bearer.close();
      await local.close();
    }
    const authed = reads.bearer.summary();
    const open = reads.local.summary();
    ctx.emit({ metric: `http object_get p50, bearer token (${authed.count} calls)`, unit: 'ms', better: 'lower', ours: authed.p50Ms });
    ctx.emit({ metric: `http object_get p50, local mode (${open.count} calls)`, unit: 'ms', better: 'lower', ours: open.p50Ms });
    ctx.emit({ metric: 'auth overhead p50 (bearer - local)', unit: 'ms', better: 'lower', ours: authed.p50Ms - open.p50Ms });
    ctx.emit({ metric: 'auth overhead p99 (bearer - local)', unit: 'ms', better: 'lower', ours: authed.p99Ms - open.p99Ms });

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
    // Heap and external only: RSS moves with what the allocator returns to the OS and is noise at this scale.
    ctx.emit({ metric: `heap + external per open idle tenant (${plan.idleTenants - 1} opened)`, unit: 'KiB', better: 'lower', ours: kib(after.heapUsed + after.external - before.heapUsed - before.external) });
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
