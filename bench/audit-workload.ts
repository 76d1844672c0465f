/**
 * What every caller of the audit benchmark does, whatever carries its calls (HTTP clients on
 * worker threads, bench/audit-callers.ts; or calls multiplexed over one stdio connection,
 * bench/audit-stdio-callers.ts): alternate object_put of one of its ids and object_get of that
 * id, until told to stop. A call refused busy is counted and retried after a pause; any other
 * error fails the caller.
 */
import { toolErrorOf, type ToolResult } from '../test/support/mcp-clients.js';

/** Ids each caller cycles through, so the store's size stays bounded over the run. */
export const idsPerCaller = 256;
/** A refused-busy call waits this long before the next. */
const busyPauseMs = 5;

export interface CallerCounters {
  /** Every answered call (refused or not: each is audited). */
  answered(): void;
  busy(): void;
}

export async function auditCallerLoop(
  callTool: (name: string, args: Record<string, unknown>) => Promise<ToolResult>,
  caller: number,
  stopped: () => boolean,
  counters: CallerCounters,
): Promise<void> {
  for (let seq = 0; !stopped(); seq++) {
    const id = `bench-${caller}-${Math.floor(seq / 2) % idsPerCaller}`;
    const put = seq % 2 === 0;
    const result = put
      ? await callTool('object_put', { id, type: 'note', attributes: { caller, seq, text: 'audited bench call' } })
      : await callTool('object_get', { id });
    counters.answered();
    if (result.isError !== true) continue;
    const error = toolErrorOf(result);
    if (error?.code !== 'busy') throw new Error(`${put ? 'object_put' : 'object_get'} failed: ${JSON.stringify(error ?? result.content).slice(0, 500)}`);
    counters.busy();
    await new Promise((resolve) => setTimeout(resolve, busyPauseMs));
  }
}
