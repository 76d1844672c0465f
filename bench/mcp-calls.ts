/**
 * Timing MCP tool calls through a real SDK 1.x client, one call at a time (the latency a
 * single agent sees). Shared by every MCP-level benchmark: the reference server's here, ours
 * over stdio and HTTP when they are added.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ownCpuMs, processCpuMs } from './process-cpu.js';
import { nowMs, Samples, type LatencySummary } from './stats.js';

export interface ToolCall {
  readonly name: string;
  readonly arguments: Record<string, unknown>;
}

export interface ToolCallTiming {
  readonly latency: LatencySummary;
  /** Sequential calls per second: completed calls over the time they took. */
  readonly callsPerSec: number;
  /**
   * CPU per call, all threads: the work a call costs, which a crowded machine blurs far less
   * than it blurs the latency. The server's only when its pid is known (a stdio child).
   */
  readonly serverCpuMsPerCall?: number;
  readonly clientCpuMsPerCall: number;
}

/**
 * Makes up to `count` calls of `makeCall(i)`, stopping early once `budgetMs` is spent (at
 * least one call is always made). A call answered with isError fails the benchmark.
 */
export async function timeToolCalls(
  client: Client,
  options: { count: number; budgetMs: number; makeCall: (i: number) => ToolCall; serverPid?: number },
): Promise<ToolCallTiming> {
  const samples = new Samples();
  const serverCpuAtStartMs = processCpuMs(options.serverPid);
  const clientCpuAtStartMs = ownCpuMs();
  const startMs = nowMs();
  for (let i = 0; i < options.count; i++) {
    if (i > 0 && nowMs() - startMs > options.budgetMs) break;
    const call = options.makeCall(i);
    const t0 = nowMs();
    const result = await client.callTool({ name: call.name, arguments: call.arguments });
    samples.add(nowMs() - t0);
    if (result.isError) throw new Error(`${call.name} failed: ${JSON.stringify(result.content).slice(0, 500)}`);
  }
  const elapsedMs = nowMs() - startMs;
  const clientCpuMsPerCall = (ownCpuMs() - clientCpuAtStartMs) / samples.count;
  const serverCpuAtEndMs = processCpuMs(options.serverPid);
  const serverCpuMs = serverCpuAtStartMs !== undefined && serverCpuAtEndMs !== undefined ? serverCpuAtEndMs - serverCpuAtStartMs : undefined;
  return {
    latency: samples.summary(),
    callsPerSec: (samples.count * 1000) / elapsedMs,
    clientCpuMsPerCall,
    ...(serverCpuMs !== undefined && { serverCpuMsPerCall: serverCpuMs / samples.count }),
  };
}

/**
 * Untimed calls before the timed ones, the same rule for every server: up to `count` calls or
 * `budgetMs`, whichever ends first. A server's first few thousand calls run code the JIT has not
 * optimised yet (about twice the CPU of a warm call); an agent's long session is what the
 * figures are about, so the timed calls start warm. Ids are reused, so the store does not grow.
 */
export async function warmUpToolCalls(
  client: Client,
  options: { count: number; budgetMs: number; write: (slot: number) => ToolCall; read: (slot: number) => ToolCall },
): Promise<void> {
  await timeToolCalls(client, {
    count: options.count,
    budgetMs: options.budgetMs,
    makeCall: (i) => ((i & 1) === 0 ? options.write((i >> 1) % warmUpIds) : options.read((i >> 1) % warmUpIds)),
  });
}

/** The ids warm-up calls write and read, in turn (so a read always finds its object). */
const warmUpIds = 16;

