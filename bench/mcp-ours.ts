/**
 * Issue 3's MCP benchmark, our side next to the reference server in the same run: tool-call
 * latency p50/p99 and sequential calls/s of a durable write (`object_put` of a new object)
 * and a read (`object_get` of an existing one), over stdio and over Streamable HTTP, at the
 * sizes of mcpBenchPlan (0, 1k, 10k, 50k stored objects; --quick: 0, 1k). Both servers are
 * real processes driven by the SDK 1.x Client through `timeToolCalls`; ours is the built CLI
 * (`node bin/ioboxx-memory.js serve --stdio|--http`, local mode), its store populated through
 * the memory module before it starts (concurrent puts: group commit makes that quick). Each
 * server first gets the same untimed warm-up (`warmUpToolCalls`: up to 2,000 calls or 4 s), so
 * the figures are those of a server in a long session, not of its first, unoptimised calls.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { isolatedFetch } from './isolated-fetch.js';
import { waitUntilQuiet } from './process-cpu.js';
import { localTenantDefault as localTenant } from '../server/auth/local-principal.js';
import { ensureTenantDir } from '../server/tenants/tenant-dir.js';
import { memoryTools, openTenantMemory } from '../tools/index.js';
import { baseEnv, repoRoot, serverBin, startHttpServer } from '../test/e2e/server-process.js';
import type { Bench, BenchContext } from './bench.js';
import { timeToolCalls, warmUpToolCalls, type ToolCallTiming } from './mcp-calls.js';
import { entitiesLabel, mcpBenchPlan, measureReferenceServer, referencePeerName, referenceServerPath, type Plan } from './mcp-reference.js';
import type { Figure } from './report.js';

/** Puts in flight at once while populating (each waits for its group's fdatasync). */
const populateConcurrency = 512;

function objectId(i: number): string {
  return `bench-${i}`;
}

function objectAttributes(i: number): Record<string, unknown> {
  return { title: `object ${i}`, tags: ['bench'], n: i };
}

/** `size` objects written through the memory module into `tenant`'s store under `dataDir`. */
export async function populateTenant(dataDir: string, tenant: string, size: number): Promise<void> {
  const dir = await ensureTenantDir(dataDir, tenant);
  const memory = await openTenantMemory(dir, tenant);
  const put = memoryTools.find((t) => t.name === 'object_put')!;
  const caller = { tenant, subject: 'bench' };
  try {
    for (let from = 0; from < size; from += populateConcurrency) {
      const calls: Promise<unknown>[] = [];
      for (let i = from; i < Math.min(size, from + populateConcurrency); i++) {
        calls.push(put.call({ memory, caller }, { id: objectId(i), type: 'note', attributes: objectAttributes(i) } as never));
      }
      await Promise.all(calls);
    }
  } finally {
    await memory.close();
  }
}

interface Series {
  readonly write: ToolCallTiming;
  readonly read: ToolCallTiming;
  /** From the first calls until the server went quiet (its start-up work done). */
  readonly startupMs: number;
}

async function measure(client: Client, size: number, plan: Plan, transport: string, serverPid: number | undefined): Promise<Series> {
  // As a normal client does: learn the tools first. The SDK client then checks every
  // structuredContent against the tool's outputSchema (validators compiled once, here).
  await client.listTools();
  // Warm up: the first call opens the store and starts the control plane; then the JIT.
  await warmUpToolCalls(client, {
    count: plan.warmUpCalls, budgetMs: plan.warmUpBudgetMs,
    write: (slot) => ({ name: 'object_put', arguments: { id: `warmup-${transport}-${slot}`, type: 'note', attributes: objectAttributes(slot) } }),
    read: (slot) => ({ name: 'object_get', arguments: { id: `warmup-${transport}-${slot}` } }),
  });
  // Timed calls begin once the server's start-up work is over (on a new data dir embedded Postgres
  // initialises its cluster for ~10 s of CPU, which would share the two cores with the calls).
  const settled = await waitUntilQuiet(serverPid);
  const write = await timeToolCalls(client, {
    count: plan.callsPerSeries, budgetMs: plan.budgetMsPerSeries, ...(serverPid !== undefined && { serverPid }),
    makeCall: (i) => ({ name: 'object_put', arguments: { id: `new-${transport}-${i}`, type: 'note', attributes: objectAttributes(i) } }),
  });
  const existing = Math.max(1, size);
  const read = await timeToolCalls(client, {
    count: plan.callsPerSeries, budgetMs: plan.budgetMsPerSeries, ...(serverPid !== undefined && { serverPid }),
    makeCall: (i) => ({ name: 'object_get', arguments: { id: size === 0 ? `new-${transport}-0` : objectId((i * 7_919) % existing) } }),
  });
  return { write, read, startupMs: settled.waitedMs };
}

const clientInfo = { name: 'ioboxx-memory-bench', version: '0.1.0' };

async function measureStdio(dataDir: string, size: number, plan: Plan): Promise<Series> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [serverBin, 'serve', '--stdio'],
    env: { ...getDefaultEnvironment(), ...baseEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_LOG_LEVEL: 'warn' },
    stderr: 'ignore',
  });
  const client = new Client(clientInfo);
  await client.connect(transport);
  try {
    return await measure(client, size, plan, 'stdio', transport.pid ?? undefined);
  } finally {
    await client.close();
  }
}

async function measureHttp(dataDir: string, size: number, plan: Plan): Promise<Series> {
  const server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  const client = new Client(clientInfo);
  try {
    await client.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { fetch: isolatedFetch }));
    return await measure(client, size, plan, 'http', server.child.pid);
  } finally {
    await client.close().catch(() => undefined);
    await server.stop();
  }
}

function figures(transport: string, label: string, ours: Series, peer: Omit<Series, 'startupMs'> | undefined): Figure[] {
  const peerOf = (value: number | undefined) => (peer && value !== undefined ? { peer: { name: referencePeerName, value } } : {});
  return [
    { metric: `${transport} write p50, ${label} (${ours.write.latency.count} calls)`, unit: 'ms', better: 'lower', ours: ours.write.latency.p50Ms, ...peerOf(peer?.write.latency.p50Ms) },
    { metric: `${transport} write p99, ${label}`, unit: 'ms', better: 'lower', ours: ours.write.latency.p99Ms, ...peerOf(peer?.write.latency.p99Ms) },
    { metric: `${transport} writes/s, ${label}`, unit: 'calls/s', better: 'higher', ours: ours.write.callsPerSec, ...peerOf(peer?.write.callsPerSec) },
    { metric: `${transport} read p50, ${label} (${ours.read.latency.count} calls)`, unit: 'ms', better: 'lower', ours: ours.read.latency.p50Ms, ...peerOf(peer?.read.latency.p50Ms) },
    { metric: `${transport} read p99, ${label}`, unit: 'ms', better: 'lower', ours: ours.read.latency.p99Ms, ...peerOf(peer?.read.latency.p99Ms) },
    { metric: `${transport} reads/s, ${label}`, unit: 'calls/s', better: 'higher', ours: ours.read.callsPerSec, ...peerOf(peer?.read.callsPerSec) },
    ...cpuFigures(transport, label, ours, peer),
    { metric: `${transport} server start-up work before the timed calls, ${label}`, unit: 'ms', better: 'lower', ours: ours.startupMs },
  ];
}

/** CPU per call of the server process (all threads) and of the client: robust where wall time is not. */
function cpuFigures(transport: string, label: string, ours: Series, peer: Omit<Series, 'startupMs'> | undefined): Figure[] {
  const figures: Figure[] = [];
  for (const kind of ['write', 'read'] as const) {
    const server = ours[kind].serverCpuMsPerCall;
    const peerServer = peer?.[kind].serverCpuMsPerCall;
    if (server !== undefined) {
      figures.push({
        metric: `${transport} ${kind} server CPU per call, ${label}`, unit: 'ms', better: 'lower', ours: server,
        ...(peerServer !== undefined && { peer: { name: referencePeerName, value: peerServer } }),
      });
    }
    const peerClient = peer?.[kind].clientCpuMsPerCall;
    figures.push({
      metric: `${transport} ${kind} client CPU per call, ${label}`, unit: 'ms', better: 'lower', ours: ours[kind].clientCpuMsPerCall,
      ...(peerClient !== undefined && { peer: { name: referencePeerName, value: peerClient } }),
    });
  }
  return figures;
}

export const mcpOursBench: Bench = {
  name: 'mcp-ours',
  description: 'our server (built CLI) over stdio and HTTP: object_put / object_get p50/p99 and calls/s at 0-50k objects, beside the reference server',
  async run(ctx: BenchContext) {
    if (!existsSync(path.join(repoRoot, 'dist', 'server', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
    if (!existsSync(referenceServerPath)) throw new Error(`reference server not found at ${referenceServerPath} (npm install)`);
    const plan = mcpBenchPlan(ctx);
    for (const size of plan.sizes) {
      const label = entitiesLabel(size).replace('entities', 'objects');
      ctx.progress(`${label}: populating our store`);
      const populateStartMs = performance.now();
      // One data dir per transport: the HTTP series must not see the stdio series' writes.
      const stdioDir = path.join(ctx.dataDir, `ours-stdio-${size}`);
      const httpDir = path.join(ctx.dataDir, `ours-http-${size}`);
      await populateTenant(stdioDir, localTenant, size);
      await populateTenant(httpDir, localTenant, size);
      ctx.progress(`${label}: populated twice in ${((performance.now() - populateStartMs) / 1000).toFixed(1)} s; stdio, then HTTP, then the reference server`);
      const stdio = await measureStdio(stdioDir, size, plan);
      const http = await measureHttp(httpDir, size, plan);
      const reference = await measureReferenceServer(ctx.dataDir, size, plan);
      for (const figure of figures('stdio', label, stdio, reference)) ctx.emit(figure);
      // The reference server has no HTTP transport: our HTTP figures stand alone.
      for (const figure of figures('http', label, http, undefined)) ctx.emit(figure);
    }
  },
};
