/**
 * Peer figures for the MCP-level benchmarks: the reference memory server
 * (`@modelcontextprotocol/server-memory`) spawned over stdio and driven by the SDK 1.x
 * Client. Write = create_entities of one new entity, read = open_nodes of one existing
 * entity, each at 0, 1k, 10k and 50k stored entities (preloaded by writing its JSONL file
 * directly). It rewrites its whole file on every write, so the number of calls at large
 * sizes is bounded by a time budget. Also: how many of 20 concurrent writes it keeps.
 *
 * These lines carry the peer only; our side (object_put / object_get over stdio and HTTP)
 * is measured by its own benchmark file with `timeToolCalls` and the same sizes.
 */
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Bench, BenchContext } from './bench.js';
import { timeToolCalls, warmUpToolCalls, type ToolCallTiming } from './mcp-calls.js';

export const referencePeerName = '@modelcontextprotocol/server-memory';
export const referenceServerPath = fileURLToPath(new URL('../node_modules/@modelcontextprotocol/server-memory/dist/index.js', import.meta.url));

/** Stored entities before each measured series; the same sizes the MCP benchmarks use. */
export const mcpBenchSizes = [0, 1_000, 10_000, 50_000] as const;
/** Concurrent writes fired at once to see how many survive. */
const concurrentWrites = 20;

export interface Plan {
  readonly sizes: readonly number[];
  readonly callsPerSeries: number;
  readonly budgetMsPerSeries: number;
  /** Untimed calls (writes and reads in turn) before each server's timed series, and their time budget. */
  readonly warmUpCalls: number;
  readonly warmUpBudgetMs: number;
}

export function mcpBenchPlan(ctx: BenchContext): Plan {
  return ctx.quick
    ? { sizes: [0, 1_000], callsPerSeries: 20, budgetMsPerSeries: 2_000, warmUpCalls: 100, warmUpBudgetMs: 1_000 }
    : { sizes: mcpBenchSizes, callsPerSeries: 200, budgetMsPerSeries: 8_000, warmUpCalls: 2_000, warmUpBudgetMs: 4_000 };
}

/** The reference server's file format: one JSON object per line. */
function preload(file: string, entities: number): void {
  const lines: string[] = [];
  for (let i = 0; i < entities; i++) {
    lines.push(JSON.stringify({ type: 'entity', name: `entity-${i}`, entityType: 'note', observations: [`object ${i}`, 'bench'] }));
  }
  writeFileSync(file, lines.join('\n'));
}

async function connect(file: string): Promise<{ client: Client; serverPid: number | undefined }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [referenceServerPath],
    env: { ...getDefaultEnvironment(), MEMORY_FILE_PATH: file },
    stderr: 'ignore',
  });
  const client = new Client({ name: 'ioboxx-memory-bench', version: '0.1.0' });
  await client.connect(transport);
  return { client, serverPid: transport.pid ?? undefined };
}

function createOne(name: string) {
  return { name: 'create_entities', arguments: { entities: [{ name, entityType: 'note', observations: ['bench write'] }] } };
}

export interface ReferenceSeries {
  readonly write: ToolCallTiming;
  readonly read: ToolCallTiming;
}

/**
 * The reference server preloaded with `size` entities: one-at-a-time create_entities, then
 * open_nodes. Exported so the MCP benchmarks of our server can print both on one line.
 */
export async function measureReferenceServer(dir: string, size: number, plan: Omit<Plan, 'sizes'>,
  andThen?: (client: Client) => Promise<void>): Promise<ReferenceSeries> {
  const file = path.join(dir, `memory-${size}.jsonl`);
  preload(file, size);
  const { client, serverPid } = await connect(file);
  const pid = serverPid !== undefined ? { serverPid } : {};
  try {
    await client.listTools(); // as a normal client does (and as ours is driven): outputs are then validated
    await warmUpToolCalls(client, {
      count: plan.warmUpCalls, budgetMs: plan.warmUpBudgetMs,
      write: (slot) => createOne(`warmup-${size}-${slot}`),
      read: (slot) => ({ name: 'open_nodes', arguments: { names: [`warmup-${size}-${slot}`] } }),
    });
    const write = await timeToolCalls(client, {
      count: plan.callsPerSeries, budgetMs: plan.budgetMsPerSeries, ...pid,
      makeCall: (i) => createOne(`new-${size}-${i}`),
    });
    const existing = Math.max(1, size);
    const read = await timeToolCalls(client, {
      count: plan.callsPerSeries, budgetMs: plan.budgetMsPerSeries, ...pid,
      makeCall: (i) => ({ name: 'open_nodes', arguments: { names: [size === 0 ? `new-${size}-0` : `entity-${(i * 7_919) % existing}`] } }),
    });
    await andThen?.(client);
    return { write, read };
  } finally {
    await client.close();
  }
}

export function entitiesLabel(size: number): string {
  return `${size >= 1000 ? `${size / 1000}k` : size} entities`;
}

export const mcpReferenceBench: Bench = {
  name: 'mcp-reference',
  description: 'reference memory MCP server over stdio: create_entities / open_nodes p50/p99 at 0-50k entities',
  async run(ctx) {
    if (!existsSync(referenceServerPath)) throw new Error(`reference server not found at ${referenceServerPath} (npm install)`);
    const plan = mcpBenchPlan(ctx);
    for (const size of plan.sizes) {
      const label = entitiesLabel(size);
      ctx.progress(`${label}: writes, then reads`);
      const { write, read } = await measureReferenceServer(ctx.dataDir, size, plan,
        size === plan.sizes[0] ? (client) => keptOfConcurrent(ctx, client) : undefined);
      const peer = (value: number) => ({ name: referencePeerName, value });
      ctx.emit({ metric: `stdio write p50, ${label} (${write.latency.count} calls)`, unit: 'ms', better: 'lower', peer: peer(write.latency.p50Ms) });
      ctx.emit({ metric: `stdio write p99, ${label}`, unit: 'ms', better: 'lower', peer: peer(write.latency.p99Ms) });
      ctx.emit({ metric: `stdio writes/s, ${label}`, unit: 'calls/s', better: 'higher', peer: peer(write.callsPerSec) });
      ctx.emit({ metric: `stdio read p50, ${label} (${read.latency.count} calls)`, unit: 'ms', better: 'lower', peer: peer(read.latency.p50Ms) });
      ctx.emit({ metric: `stdio read p99, ${label}`, unit: 'ms', better: 'lower', peer: peer(read.latency.p99Ms) });
    }
  },
};

/** Fires concurrent writes of distinct entities, then counts how many are stored. */
async function keptOfConcurrent(ctx: BenchContext, client: Client): Promise<void> {
  const names = Array.from({ length: concurrentWrites }, (_, i) => `concurrent-${i}`);
  await Promise.all(names.map((name) => client.callTool(createOne(name))));
  const result = await client.callTool({ name: 'open_nodes', arguments: { names } });
  const text = (result.content as { type: string; text?: string }[]).find((c) => c.type === 'text')?.text ?? '{}';
  const kept = (JSON.parse(text) as { entities?: unknown[] }).entities?.length ?? 0;
  ctx.emit({ metric: `concurrent writes kept, of ${concurrentWrites}`, unit: 'writes', better: 'higher', peer: { name: referencePeerName, value: kept } });
}
