/**
 * Fairness (issue 7): one tenant floods the server, another keeps its ordinary load; how much
 * does the second tenant's p99 latency rise? The promise: at most 2x its p99 alone (the
 * figure's "x better" stays >= 0.5).
 *
 * Three processes, as in production: the real server (`serve --http`, token mode against the
 * test OIDC issuer, embedded control plane, access log on), the quiet tenant's client (this
 * process) and the flooding tenant's client (bench/fairness-flood.ts, its own process, so its
 * CPU is a client's). Every call is an MCP `tools/call object_put` over Streamable HTTP
 * (2026-07-28 envelope), durable before it is answered, so latency is end to end.
 *
 * Offered load: the quiet tenant, 4 closed-loop callers on 4 connections; the flood,
 * 256 closed-loop callers on 64 connections, greedy (honours Retry-After) or hostile (retries
 * 1 ms after a refusal). Server limits: defaults, except a per-tenant queue of 32 so the flood's
 * 64 connections overflow it and are refused. Phases alternate (alone, greedy, hostile) for `rounds` rounds so the
 * machine's other load falls on all of them alike; each phase's samples are pooled.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { baseEnv, serverBin } from '../test/e2e/server-process.js';
import { oidcEnvForIssuer, startOidcIssuer } from '../test/support/oidc-issuer.js';
import type { Bench, BenchContext } from './bench.js';
import { mcpHttpCaller, type McpHttpCaller } from './fairness-client.js';
import { nowMs, Samples } from './stats.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const quietCallers = 4;
const floodCallers = 256;
const floodSockets = 64;
/** The flood runs this long before the quiet tenant's warm-up starts: it is at full strength. */
const floodSettleMs = 500;
/**
 * The server's per-tenant limits in this bench: the defaults, but a queue short enough that the
 * flood's 64 connections overflow it, so refusals (and the greedy/hostile difference) are exercised.
 */
const serverLimitsEnv = { IOBOXX_TENANT_QUEUE_MAX: '32' } as const;
/** The embedded control plane (PGlite) takes seconds to start, minutes on a loaded machine. */
const serverStartMsMax = 240_000;

type Phase = 'alone' | 'greedy' | 'hostile';

interface FloodCounts {
  readonly acknowledged: number;
  readonly refused: number;
  readonly failed: number;
  readonly startedAtMs: number;
  readonly stoppedAtMs: number;
  readonly firstFailure?: string;
}

/** `serve --http`, the built server as users run it (IOBOXX_E2E_SERVER_MAIN swaps in another tree's, for A/B runs); resolves with its URL once the control plane is ready too. */
async function startServer(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [serverBin, 'serve', '--http'], {
    cwd: repoRoot,
    env: { ...baseEnv(), IOBOXX_HTTP_PORT: '0', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let tail = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in ${serverStartMsMax} ms:\n${tail}`));
    }, serverStartMsMax);
    let listening: string | undefined;
    // Read every line for the server's whole life: a full stderr pipe would stall it.
    createInterface({ input: child.stderr! }).on('line', (line) => {
      tail = (tail + line + '\n').slice(-4_000);
      if (!line.startsWith('{')) return;
      const message = JSON.parse(line) as { msg?: string; url?: string };
      if (message.msg === 'http server listening') listening = message.url;
      if (message.msg === 'control plane ready' && listening !== undefined) {
        clearTimeout(timer);
        resolve(listening);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${tail}`)));
  });
  return { url, child };
}

async function startFlood(url: string, token: string, kind: 'greedy' | 'hostile'): Promise<{ stop(): Promise<FloodCounts> }> {
  const plan = { url: `${url}/mcp`, token, kind, callers: floodCallers, sockets: floodSockets };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'bench', 'fairness-flood.ts'), JSON.stringify(plan)], {
    cwd: repoRoot,
    env: baseEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done || !first.value.includes('"started"')) throw new Error(`flood did not start: ${String(first.value)}`);
  return {
    async stop() {
      child.kill('SIGTERM');
      const last = await lines.next();
      await once(child, 'exit').catch(() => undefined);
      if (last.done) throw new Error('flood exited without its counts');
      return JSON.parse(last.value) as FloodCounts;
    },
  };
}

/**
 * The quiet tenant's closed loop; every latency of a call answered inside the window counts.
 * The window is `durationMs` and at least `callsMin` calls (a p99 needs samples; on a loaded
 * machine calls are slow), but never longer than `windowMsMax`.
 */
async function quietLoad(caller: McpHttpCaller, samples: Samples, ctx: BenchContext, phase: Phase, round: number): Promise<{ calls: number; ms: number }> {
  const warmupMs = ctx.quick ? 300 : 1_000;
  const durationMs = ctx.quick ? 1_000 : 4_000;
  const callsMin = ctx.quick ? 100 : 500;
  const windowMsMax = ctx.quick ? 10_000 : 30_000;
  const startMs = nowMs();
  const fromMs = startMs + warmupMs;
  let endMs = fromMs + windowMsMax;
  let calls = 0;
  await Promise.all(Array.from({ length: quietCallers }, async (_, index) => {
    for (let seq = 0; nowMs() < endMs; seq++) {
      const t0 = nowMs();
      const outcome = await caller.put(`quiet-${round}-${phase}-${index}-${seq}`, 'quiet');
      const t1 = nowMs();
      if (outcome.kind !== 'ok') throw new Error(`quiet tenant call refused or failed (${phase}): ${JSON.stringify(outcome)}`);
      if (t1 >= fromMs && t1 <= endMs) {
        samples.add(t1 - t0);
        calls++;
        if (calls >= callsMin && t1 >= fromMs + durationMs) endMs = Math.min(endMs, t1);
      }
    }
  }));
  return { calls, ms: endMs - fromMs };
}

export const fairnessBench: Bench = {
  name: 'fairness',
  description: "one tenant floods the real HTTP server from its own process (256 callers on 64 connections, greedy or hostile); the other tenant's p99 call latency alone and beside it",
  async run(ctx) {
    const rounds = ctx.quick ? 1 : 2;
    const idp = await startOidcIssuer();
    let server: ChildProcess | undefined;
    try {
      const tokenOf = (tenant: string) => idp.token({ organizations: [tenant], realmRoles: ['memory-writer'], ttlS: 3_600 });
      ctx.progress('starting the server (token mode, embedded control plane)');
      const started = await startServer({ IOBOXX_DATA_DIR: path.join(ctx.dataDir, 'server'), IOBOXX_LOG_LEVEL: 'info', ...serverLimitsEnv, ...oidcEnvForIssuer(idp) });
      server = started.child;
      const quiet = mcpHttpCaller(`${started.url}/mcp`, await tokenOf('quiet'), quietCallers);
      const floodToken = await tokenOf('flood');
      // Both stores open, JIT warm, JWKS cached before anything is measured.
      const warmFlood = mcpHttpCaller(`${started.url}/mcp`, floodToken, 1);
      for (let i = 0; i < 50; i++) {
        for (const outcome of [await quiet.put(`warm-${i}`, 'warm'), await warmFlood.put(`warm-${i}`, 'warm')]) {
          if (outcome.kind !== 'ok') throw new Error(`warm-up call failed: ${JSON.stringify(outcome)}`);
        }
      }
      warmFlood.close();

      const samples: Record<Phase, Samples> = { alone: new Samples(), greedy: new Samples(), hostile: new Samples() };
      const quietRate: Record<Phase, { calls: number; ms: number }> = { alone: { calls: 0, ms: 0 }, greedy: { calls: 0, ms: 0 }, hostile: { calls: 0, ms: 0 } };
      const floods: Record<'greedy' | 'hostile', FloodCounts[]> = { greedy: [], hostile: [] };
      for (let round = 0; round < rounds; round++) {
        for (const phase of ['alone', 'greedy', 'hostile'] as const) {
          ctx.progress(`round ${round + 1}/${rounds}: quiet tenant ${phase === 'alone' ? 'alone' : `beside a ${phase} flood`} (load average ${os.loadavg()[0]!.toFixed(1)})`);
          const flood = phase === 'alone' ? undefined : await startFlood(started.url, floodToken, phase);
          if (flood) await new Promise((resolve) => setTimeout(resolve, floodSettleMs));
          const run = await quietLoad(quiet, samples[phase], ctx, phase, round);
          quietRate[phase] = { calls: quietRate[phase].calls + run.calls, ms: quietRate[phase].ms + run.ms };
          if (flood && phase !== 'alone') floods[phase].push(await flood.stop());
        }
      }
      quiet.close();

      ctx.emit({ metric: 'machine load average (1 min) at the end, on 2 cores', unit: 'runnable', ours: os.loadavg()[0]!, better: 'lower' });
      const alone = samples.alone.summary();
      const peer = { name: 'quiet tenant alone', value: alone.p99Ms };
      const rate = (phase: Phase) => (quietRate[phase].calls * 1000) / quietRate[phase].ms;
      ctx.emit({ metric: `quiet tenant call p99, alone (${quietCallers} callers, ${alone.count} calls)`, unit: 'ms', ours: alone.p99Ms, better: 'lower' });
      ctx.emit({ metric: 'quiet tenant call p50, alone', unit: 'ms', ours: alone.p50Ms, better: 'lower' });
      for (const kind of ['greedy', 'hostile'] as const) {
        const beside = samples[kind].summary();
        ctx.emit({ metric: `quiet tenant call p99, ${kind} flood`, unit: 'ms', ours: beside.p99Ms, better: 'lower', peer });
        ctx.emit({ metric: `quiet tenant call p50, ${kind} flood`, unit: 'ms', ours: beside.p50Ms, better: 'lower', peer: { name: 'quiet tenant alone', value: alone.p50Ms } });
        ctx.emit({ metric: `quiet tenant calls/s, ${kind} flood`, unit: 'calls/s', ours: rate(kind), better: 'higher', peer: { name: 'quiet tenant alone', value: rate('alone') } });
        const counts = floods[kind];
        const seconds = counts.reduce((sum, c) => sum + (c.stoppedAtMs - c.startedAtMs) / 1000, 0);
        const acknowledged = counts.reduce((sum, c) => sum + c.acknowledged, 0);
        const refused = counts.reduce((sum, c) => sum + c.refused, 0);
        const failed = counts.reduce((sum, c) => sum + c.failed, 0);
        if (failed > 0) ctx.progress(`${kind} flood: ${failed} calls failed (not busy), first: ${counts.find((c) => c.firstFailure)?.firstFailure}`);
        ctx.emit({ metric: `${kind} flood: calls answered/s (acknowledged + refused)`, unit: 'calls/s', ours: (acknowledged + refused) / seconds, better: 'higher' });
        ctx.emit({ metric: `${kind} flood: acknowledged writes/s`, unit: 'calls/s', ours: acknowledged / seconds, better: 'higher' });
      }
    } finally {
      if (server && server.exitCode === null) {
        server.kill('SIGTERM');
        await once(server, 'exit');
      }
      await idp.stop();
    }
  },
};
