/**
 * The audit benchmark's callers, run in a worker thread: real MCP clients over real HTTP, each
 * running the benchmark's caller loop (bench/audit-workload.ts). The client is the lean
 * one (bench/audit-http-client.ts: the protocol over node:http keep-alive, no SDK machinery) or,
 * for comparison, the SDK Client of the era (which costs about as much CPU per call as the
 * server). Several threads share the callers so one thread's event loop is not what limits the figure.
 *
 * Protocol with the parent: workerData {@link CallerThreadData}; the thread connects its
 * clients and posts `ready`; on `start` it calls until `stop`, counting answered and busy calls
 * in the shared counters; it posts `stopped` (after closing its clients) or `failed`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectNewerHttp, connectOlderHttp, type ToolResult } from '../test/support/mcp-clients.js';
import { LeanMcpHttpClient } from './audit-http-client.js';
import { auditCallerLoop } from './audit-workload.js';

/** Which client the callers use: the lean one, or the era's SDK Client (for comparison). */
export type CallerClientKind = 'lean' | 'sdk';

interface Caller {
  callTool(name: string, args: Record<string, unknown>): Promise<ToolResult>;
  close(): Promise<void>;
}

export interface CallerThreadData {
  readonly mcpUrl: string;
  readonly era: 'older' | 'newer';
  readonly client: CallerClientKind;
  /** Callers of this thread are numbered firstCaller .. firstCaller + callers - 1 (their ids differ). */
  readonly firstCaller: number;
  readonly callers: number;
  /** Int32 counters shared by every thread: [answered, busy] at counterIndex * 2. */
  readonly counters: SharedArrayBuffer;
  readonly counterIndex: number;
}

export type CallerThreadMessage = { kind: 'ready' } | { kind: 'stopped' } | { kind: 'failed'; error: string };

async function main(): Promise<void> {
  const data = workerData as CallerThreadData;
  const port = parentPort!;
  const counters = new Int32Array(data.counters);
  const answeredAt = data.counterIndex * 2;
  const busyAt = answeredAt + 1;
  const connectSdk = data.era === 'older' ? connectOlderHttp : connectNewerHttp;
  const connect = (): Promise<Caller> => (data.client === 'lean' ? LeanMcpHttpClient.connect(data.mcpUrl, data.era) : connectSdk({ url: data.mcpUrl }));
  const clients: Caller[] = await Promise.all(Array.from({ length: data.callers }, connect));
  let stopped = false;
  const started = new Promise<void>((resolve) => {
    port.on('message', (message: 'start' | 'stop') => {
      if (message === 'start') resolve();
      else stopped = true;
    });
  });
  port.postMessage({ kind: 'ready' } satisfies CallerThreadMessage);
  await started;
  let failure: Error | undefined;
  const count = {
    answered: () => void Atomics.add(counters, answeredAt, 1),
    busy: () => void Atomics.add(counters, busyAt, 1),
  };
  const loops = clients.map((client, i) => auditCallerLoop((name, args) => client.callTool(name, args), data.firstCaller + i, () => stopped, count).catch((error: unknown) => {
    failure ??= error as Error;
    stopped = true; // one caller failed: every caller stops
  }));
  await Promise.all(loops);
  if (failure) port.postMessage({ kind: 'failed', error: failure.message } satisfies CallerThreadMessage);
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  port.postMessage({ kind: 'stopped' } satisfies CallerThreadMessage);
  port.close();
}

await main();
