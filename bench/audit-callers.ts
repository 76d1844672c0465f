/**
 * The audit benchmark's callers, run in a worker thread: real MCP clients over real HTTP, each
 * alternating object_put of one of its ids and object_get of that id. The client is the lean
 * one (bench/audit-http-client.ts: the protocol over node:http keep-alive, no SDK machinery) or,
 * for comparison, the SDK Client of the era (which costs about as much CPU per call as the
 * server). Several threads share the callers so one thread's event loop is not what limits the figure.
 *
 * Protocol with the parent: workerData {@link CallerThreadData}; the thread connects its
 * clients and posts `ready`; on `start` it calls until `stop`, counting answered and busy calls
 * in the shared counters; it posts `stopped` (after closing its clients) or `failed`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectNewerHttp, connectOlderHttp, toolErrorOf, type ToolResult } from '../test/support/mcp-clients.js';
import { LeanMcpHttpClient } from './audit-http-client.js';

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

/** Ids each caller cycles through, so the store's size stays bounded over the run. */
export const idsPerCaller = 256;
/** A refused-busy call waits this long before the next. */
const busyPauseMs = 5;

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
  const loops = clients.map((client, i) => callLoop(client, i).catch((error: unknown) => {
    failure ??= error as Error;
    stopped = true; // one caller failed: every caller stops
  }));
  async function callLoop(client: Caller, i: number): Promise<void> {
    const caller = data.firstCaller + i;
    for (let seq = 0; !stopped; seq++) {
      const id = `bench-${caller}-${Math.floor(seq / 2) % idsPerCaller}`;
      const put = seq % 2 === 0;
      const result = put
        ? await client.callTool('object_put', { id, type: 'note', attributes: { caller, seq, text: 'audited bench call' } })
        : await client.callTool('object_get', { id });
      Atomics.add(counters, answeredAt, 1); // refused or not, every answered call is audited
      if (result.isError !== true) continue;
      const error = toolErrorOf(result);
      if (error?.code !== 'busy') throw new Error(`${put ? 'object_put' : 'object_get'} failed: ${JSON.stringify(error ?? result.content).slice(0, 500)}`);
      Atomics.add(counters, busyAt, 1);
      await new Promise((resolve) => setTimeout(resolve, busyPauseMs));
    }
  }
  await Promise.all(loops);
  if (failure) port.postMessage({ kind: 'failed', error: failure.message } satisfies CallerThreadMessage);
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  port.postMessage({ kind: 'stopped' } satisfies CallerThreadMessage);
  port.close();
}

await main();
