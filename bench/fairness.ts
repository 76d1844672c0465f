/**
 * Fairness: one tenant floods, another keeps its ordinary load; how much does the second
 * tenant's p99 commit latency rise? Each tenant has its own store (own log, own fdatasync),
 * both in one process, as on a server. The promise (issue 7): with the per-tenant load guard
 * the quiet tenant's p99 rises by at most 2x (the figure's "x better" stays >= 0.5).
 *
 * The quiet tenant: 4 callers, closed loop. The flood: 1,024 concurrent callers, in two kinds:
 *  - greedy: each refused call waits its Retry-After, as a client following the protocol does;
 *  - hostile: each refused call is retried after 1 ms, ignoring Retry-After. Refusing costs CPU
 *    in the one event loop both tenants share; past the guard, only limits in front of the
 *    server (connections per client at the proxy) take that cost away.
 * Measured: quiet tenant alone; beside each flood through the guard
 * (server/ops/load-protection.ts); beside the greedy flood without the guard.
 */
import * as path from 'node:path';
import { BusyError, TenantLoadGuard } from '../server/ops/load-protection.js';
import type { Caller } from '../storage/changes.js';
import { Store } from '../storage/store.js';
import type { Bench, BenchContext } from './bench.js';
import { runClosedLoop, type ClosedLoopResult } from './closed-loop.js';
import { benchModule } from './engine.js';
import { benchObject } from './workload.js';

const quietCallers = 4;
const floodCallers = 1024;
/** The hostile flood's pause after a refusal. */
const hostileRetryMs = 1;
/** Per-tenant limits of the guarded run: the defaults a server starts with. */
const guardLimits = { inFlightMax: 64, queuedMax: 256, ratePerSecond: 20_000, burst: 20_000 } as const;

const quietCaller: Caller = { tenant: 'quiet', subject: 'bench' };
const floodCaller: Caller = { tenant: 'flood', subject: 'bench' };

interface Flood {
  stop(): Promise<{ acknowledged: number; refused: number }>;
}

function startFlood(store: Store, guard: TenantLoadGuard | undefined, kind: 'greedy' | 'hostile'): Flood {
  let stopped = false;
  let acknowledged = 0;
  let refused = 0;
  const loops = Array.from({ length: floodCallers }, async (_, caller) => {
    for (let seq = 0; !stopped; seq++) {
      const o = benchObject(caller + 10_000, seq);
      const call = () => store.call('upsert', o, floodCaller);
      try {
        await (guard ? guard.run('flood', call) : call());
        acknowledged++;
      } catch (error) {
        if (!(error instanceof BusyError) && (error as { code?: string }).code !== 'busy') throw error;
        refused++;
        const pauseMs = kind === 'hostile' || !(error instanceof BusyError) ? hostileRetryMs : error.retryAfterMs;
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return { acknowledged, refused };
    },
  };
}

function quietLoad(store: Store, guard: TenantLoadGuard | undefined, ctx: BenchContext): Promise<ClosedLoopResult> {
  return runClosedLoop({
    concurrency: quietCallers,
    durationMs: ctx.quick ? 600 : 4_000,
    warmupMs: ctx.quick ? 200 : 1_000,
    operation: (caller, seq) => {
      const call = () => store.call('upsert', benchObject(caller, seq), quietCaller);
      return guard ? guard.run('quiet', call) : call();
    },
  });
}

export const fairnessBench: Bench = {
  name: 'fairness',
  description: "one tenant floods (1,024 callers, greedy or hostile), another's p99 commit latency alone, with the guard, without it",
  async run(ctx) {
    const quiet = await Store.open({ dir: path.join(ctx.dataDir, 'quiet'), module: benchModule });
    const flooder = await Store.open({ dir: path.join(ctx.dataDir, 'flood'), module: benchModule });
    try {
      const guard = new TenantLoadGuard(guardLimits);
      ctx.progress('quiet tenant alone');
      const alone = await quietLoad(quiet, guard, ctx);

      const beside = async (kind: 'greedy' | 'hostile', guarded: boolean) => {
        ctx.progress(`quiet tenant beside a ${kind} flood, ${guarded ? 'guarded' : 'no guard'}`);
        const flood = startFlood(flooder, guarded ? guard : undefined, kind);
        const quietResult = await quietLoad(quiet, guarded ? guard : undefined, ctx);
        return { quiet: quietResult, flood: await flood.stop() };
      };
      const greedy = await beside('greedy', true);
      const hostile = await beside('hostile', true);
      const unguarded = await beside('greedy', false);

      const peer = { name: 'quiet tenant alone', value: alone.latency.p99Ms };
      ctx.emit({ metric: `quiet tenant commit p99, alone (${quietCallers} callers)`, unit: 'ms', ours: alone.latency.p99Ms, better: 'lower' });
      ctx.emit({ metric: 'quiet tenant commit p99, greedy flood, guarded', unit: 'ms', ours: greedy.quiet.latency.p99Ms, better: 'lower', peer });
      ctx.emit({ metric: 'quiet tenant commit p99, hostile flood, guarded', unit: 'ms', ours: hostile.quiet.latency.p99Ms, better: 'lower', peer });
      ctx.emit({ metric: 'quiet tenant commit p99, greedy flood, no guard', unit: 'ms', ours: unguarded.quiet.latency.p99Ms, better: 'lower', peer });
      ctx.emit({ metric: 'quiet tenant commits/s, greedy flood, guarded', unit: 'commits/s', ours: greedy.quiet.opsPerSec, better: 'higher', peer: { name: 'quiet tenant alone', value: alone.opsPerSec } });
      for (const [kind, run] of [['greedy', greedy], ['hostile', hostile]] as const) {
        const attempts = run.flood.acknowledged + run.flood.refused;
        ctx.emit({ metric: `${kind} flood: calls refused busy, guarded`, unit: '%', ours: attempts === 0 ? 0 : (100 * run.flood.refused) / attempts, better: 'higher' });
      }
    } finally {
      await quiet.close();
      await flooder.close();
    }
  },
};
