/**
 * Audit throughput (issue 5): 64 concurrent MCP callers against the real server process on the
 * services' Postgres and the Ceph RADOS Gateway (a fresh Object Lock bucket), over each transport
 * in turn: Streamable HTTP (`serve --http`, 64 sessions, each its own connection) and stdio
 * (`serve --stdio`, one connection carrying 64 calls at once, as one agent host does;
 * bench/audit-stdio-client.ts). The pipeline behind them is the same, so the pair shows what the
 * transport costs, with one difference: the HTTP server admits each call through its load guard
 * (server/ops/load-protection.ts; the bench's one tenant, alone, runs up to its default 32 calls at
 * once and the others wait in its queue), where stdio's one local connection has none.
 * IOBOXX_BENCH_AUDIT_TRANSPORT=http or stdio runs one of them.
 *
 * Each answered tool call becomes an access-log row, is staged into Postgres and shipped to S3 in
 * hash-chained batches; a call counts as audited once the batch holding it is confirmed by S3
 * (audit_batches.confirmed_at).
 *
 * Sampled every second: calls answered, rows staged and not yet shipped (the backlog), rows
 * shipped. After the calls stop, the pipeline drains (bounded); the end-to-end rate is audited
 * calls over the wall time from the first call to the drain's end.
 * Target (issue 5): >= 5,000 audited calls/s end to end, and a backlog that does not grow.
 * No peer runs beside it; the target is printed as a verdict on stderr.
 *
 * Server and client CPU per call (2nd half of the calls) are printed too: on a shared machine they
 * are the figures to compare runs by. The HTTP callers run on two worker threads (bench/audit-callers.ts).
 * By default they are lean clients (bench/audit-http-client.ts: the real protocol over HTTP/1.1
 * keep-alive, each on its own socket) of the 2025-era sessionful protocol (initialize, then one POST per call answered with
 * one JSON body). IOBOXX_BENCH_AUDIT_ERA=newer drives the 2026-07-28 protocol instead;
 * IOBOXX_BENCH_AUDIT_CLIENT=sdk uses the era's SDK Client (1.x or 2.x) for comparison.
 * IOBOXX_BENCH_SERVER_NODE_ARGS passes node flags to the server child (e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 *
 * Needs scripts/services/up.sh; without its services this benchmark says so and is skipped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { ownCpuMs, processCpuMs } from './process-cpu.js';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { shipperIntervalMs } from '../server/control/control-runtime.js';
import { auditBatchAgeMsDefault } from '../storage/audit/shipper.js';
import type { CallerClientKind, CallerThreadData, CallerThreadMessage } from './audit-callers.js';
import { LeanMcpStdioClient } from './audit-stdio-client.js';
import { auditCallerLoop } from './audit-workload.js';
import { startModuleWorker } from '../storage/io/module-worker.js';
import { freshPostgresDatabase, postgresService, s3Service, type S3Service } from '../test/support/services.js';
import { baseEnv, repoRoot, serverBin } from '../test/e2e/server-process.js';
import type { Bench, BenchContext } from './bench.js';

const callers = 64;
/** Threads the callers run on: the SDK client costs about as much CPU per call as the server. */
const callerThreads = 2;
const runMsFull = 60_000;
const runMsQuick = 10_000;
const sampleEveryMs = 1_000;
/** The tail after the last call: shipper tick (2 s) + batch age (5 s) + uploads, with room. */
const drainWaitMsMax = 60_000;
/** ... and it gives up sooner once nothing more has shipped for this long (about three ship cycles). */
const drainStallMsMax = 20_000;
const listeningWaitMsMax = 60_000;
const stopWaitMsMax = 30_000;
const targetAuditedPerSec = 5_000;
/**
 * The backlog is a sawtooth: rows wait up to a batch's age plus a shipper tick, then leave
 * together. It "grew" if its second-half trend adds more than one such cycle of arrivals over
 * that half, or if nothing shipped in the second half while calls were answered.
 */
const shipCycleMs = auditBatchAgeMsDefault + shipperIntervalMs;
const serverStderrKeptChars = 8_000;
/** Server warnings and errors are shown as they come (a failing shipper explains a zero figure), up to this many. */
const serverWarningsShownMax = 20;
const serverWarningCharsMax = 600;

interface Sample {
  readonly atMs: number;
  readonly calls: number;
  /** Staged in Postgres, not yet in a confirmed batch. */
  readonly staged: number;
  /** Events in batches S3 confirmed. */
  readonly shipped: number;
  /** Access-log rows staged so far (the staged mark, summed over tenants). */
  readonly stagedThrough: number;
  /** CPU used so far by the server process and by this (bench client) process. */
  readonly serverCpuMs: number;
  readonly benchCpuMs: number;
}

type AuditTransport = 'http' | 'stdio';
const transportNames: Record<AuditTransport, string> = { http: 'Streamable HTTP', stdio: 'stdio' };

function transportsToRun(): AuditTransport[] {
  const only = process.env.IOBOXX_BENCH_AUDIT_TRANSPORT;
  if (only === undefined || only === '') return ['http', 'stdio'];
  if (only === 'http' || only === 'stdio') return [only];
  throw new Error(`IOBOXX_BENCH_AUDIT_TRANSPORT must be http or stdio, not ${only}`);
}

interface ServerChild {
  readonly child: ChildProcess;
  /** Where an HTTP server listens (its /metrics too); undefined over stdio. */
  readonly url: string | undefined;
  stderrTail(): string;
  /** Resolves when the server logs a line containing `text` (from now on), or rejects after `timeoutMs`. */
  logged(text: string, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `node bin/ioboxx-memory.js serve --http` (the built server, as users run it) on port 0, resolving once it listens
 * (after its control plane is ready); or `serve --stdio` with its stdin and stdout piped to this
 * process, resolving at once (a stdio server starts its control plane at the first tool call).
 */
async function startServer(transport: AuditTransport, env: Record<string, string>, onWarning: (line: string) => void): Promise<ServerChild> {
  // Extra node flags for the server child, e.g. IOBOXX_BENCH_SERVER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'.
  const nodeArgs = (process.env.IOBOXX_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, serverBin, 'serve', `--${transport}`], {
    cwd: repoRoot,
    // The server runs as `npm start` runs it (huge pages for large buffers, when this run has them).
    env: { ...baseEnv(), ...(process.env.GLIBC_TUNABLES !== undefined && { GLIBC_TUNABLES: process.env.GLIBC_TUNABLES }), IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'info', ...env },
    stdio: [transport === 'stdio' ? 'pipe' : 'ignore', transport === 'stdio' ? 'pipe' : 'ignore', 'pipe'],
  });
  let tail = '';
  let warningsShown = 0;
  const watchers = new Set<{ text: string; seen(): void }>();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string | undefined>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not listen within ${listeningWaitMsMax} ms:\n${tail}`)), listeningWaitMsMax);
    createInterface({ input: child.stderr! }).on('line', (line) => {
      tail = (tail + line + '\n').slice(-serverStderrKeptChars);
      if (warningsShown < serverWarningsShownMax && (/"level":(4|5|6)0/.test(line) || !line.startsWith('{'))) {
        warningsShown++;
        onWarning(line.slice(0, serverWarningCharsMax));
      }
      for (const watcher of watchers) if (line.includes(watcher.text)) watcher.seen();
      if (!line.includes('http server listening')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${tail}`));
    });
    if (transport === 'stdio') {
      clearTimeout(timer);
      resolve(undefined);
    }
  });
  return {
    child,
    url,
    stderrTail: () => tail,
    logged: (text, timeoutMs) => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(watcher);
        reject(new Error(`server did not log "${text}" within ${timeoutMs} ms:\n${tail}`));
      }, timeoutMs);
      const watcher = { text, seen: () => (clearTimeout(timer), watchers.delete(watcher), resolve()) };
      watchers.add(watcher);
    }),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), stopWaitMsMax);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function sampleOnce(sql: pg.Client, calls: number, startMs: number, serverPid: number | undefined): Promise<Sample> {
  const result = await sql.query(`
    select (select count(*) from audit_staging)::bigint as staged,
           (select coalesce(sum(event_count), 0) from audit_batches where confirmed_at is not null)::bigint as shipped,
           (select coalesce(sum(staged_through), 0) from audit_sources where source = 'access_log')::bigint as staged_through`);
  const row = result.rows[0] as { staged: string; shipped: string; staged_through: string };
  return {
    atMs: performance.now() - startMs,
    calls,
    staged: Number(row.staged),
    shipped: Number(row.shipped),
    stagedThrough: Number(row.staged_through),
    serverCpuMs: processCpuMs(serverPid) ?? 0,
    benchCpuMs: ownCpuMs(),
  };
}

/** Work done so far, counted exactly (unlike time, not disturbed by whoever else runs here). */
interface WorkCount {
  /** Durable store transactions (the calls' own and the access-log appends). */
  readonly commits: number;
  /** Group-commit batches: one writev + one fdatasync each. */
  readonly fdatasyncs: number;
  /** ... of which ran on the main thread (storage/log/inline-sync.ts), blocking it meanwhile. */
  readonly fdatasyncsInline: number;
  /** Seconds the server's event loop was busy (its main thread: callbacks and the blocking calls in them). */
  readonly serverLoopBusySec: number;
  /** Postgres transactions committed in the bench database (each autocommit statement is one). */
  readonly pgTransactions: number;
  /** Audit batches S3 confirmed (one PutObject each). */
  readonly s3Batches: number;
}

/** Work done so far; the server's own counters (its /metrics) only over HTTP, NaN over stdio. */
async function countWork(serverUrl: string | undefined, sql: pg.Client): Promise<WorkCount> {
  const text = serverUrl === undefined ? '' : await (await fetch(`${serverUrl}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const db = await sql.query(`select xact_commit::bigint as x, (select count(*) from audit_batches where confirmed_at is not null)::bigint as b
    from pg_stat_database where datname = current_database()`);
  const row = db.rows[0] as { x: string; b: string };
  return {
    commits: metric('ioboxx_commits_total'),
    fdatasyncs: metric('ioboxx_commit_batch_transactions_count'),
    fdatasyncsInline: metric('ioboxx_commit_batches_synced_inline_total'),
    serverLoopBusySec: metric('ioboxx_event_loop_busy_seconds_total'),
    pgTransactions: Number(row.x),
    s3Batches: Number(row.b),
  };
}

/** Least-squares slope of y over seconds. */
function slopePerSec(points: ReadonlyArray<{ atMs: number; y: number }>): number {
  if (points.length < 2) return 0;
  const xs = points.map((p) => p.atMs / 1000);
  const meanX = xs.reduce((a, b) => a + b, 0) / xs.length;
  const meanY = points.reduce((a, p) => a + p.y, 0) / points.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < points.length; i++) {
    num += (xs[i]! - meanX) * (points[i]!.y - meanY);
    den += (xs[i]! - meanX) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

interface CallLoad {
  readonly answered: () => number;
  readonly busy: () => number;
  /** A caller failed: every caller stops, and stop() rejects with its error. */
  readonly failed: () => boolean;
  stop(): Promise<void>;
}

/**
 * The callers, split over `callerThreads` worker threads (bench/audit-callers.ts); resolves once
 * every client is connected. Each caller alternates object_put of one of its ids and object_get.
 */
async function startCallerThreads(mcpUrl: string, era: 'older' | 'newer', client: CallerClientKind): Promise<CallLoad & { start(): void }> {
  const counters = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * 2 * callerThreads);
  const view = new Int32Array(counters);
  const sum = (offset: number) => {
    let total = 0;
    for (let t = 0; t < callerThreads; t++) total += Atomics.load(view, t * 2 + offset);
    return total;
  };
  let failure: Error | undefined;
  const threads = Array.from({ length: callerThreads }, (_, t) => {
    const first = Math.floor((callers * t) / callerThreads);
    const data: CallerThreadData = {
      mcpUrl, era, client, firstCaller: first, callers: Math.floor((callers * (t + 1)) / callerThreads) - first, counters, counterIndex: t,
    };
    const worker = startModuleWorker(new URL('./audit-callers.ts', import.meta.url).href, data);
    const ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (message: CallerThreadMessage) => {
        if (message.kind === 'ready') resolve();
        if (message.kind === 'failed') failure ??= new Error(`caller thread ${t}: ${message.error}`);
      });
      worker.once('error', (error) => {
        failure ??= error;
        reject(error);
      });
    });
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    return { worker, ready, exited };
  });
  try {
    await Promise.all(threads.map((t) => t.ready));
  } catch (error) {
    await Promise.all(threads.map((t) => t.worker.terminate()));
    throw error;
  }
  return {
    start: () => threads.forEach((t) => t.worker.postMessage('start')),
    answered: () => sum(0),
    busy: () => sum(1),
    failed: () => failure !== undefined,
    async stop() {
      for (const t of threads) t.worker.postMessage('stop');
      await Promise.all(threads.map((t) => t.exited));
      if (failure) throw failure;
    },
  };
}

/**
 * The callers over the stdio server's one connection: `callers` loops in this thread, their
 * calls in flight together on one LeanMcpStdioClient. Resolves once the server's control plane
 * is up: a stdio server starts it at the first tool call, so one call is made first (audited
 * like the others, not counted among the run's calls).
 */
async function startStdioCallers(server: ServerChild): Promise<CallLoad & { start(): void }> {
  const client = await LeanMcpStdioClient.connect(server.child.stdout!, server.child.stdin!);
  const controlReady = server.logged('control plane ready', listeningWaitMsMax);
  await client.callTool('object_get', { id: 'bench-warm-up' }); // not found: answered as a tool error
  await controlReady;
  let answered = 0;
  let busy = 0;
  let stopped = false;
  let failure: Error | undefined;
  const counters = { answered: () => void answered++, busy: () => void busy++ };
  let loops: Promise<void>[] = [];
  return {
    start() {
      loops = Array.from({ length: callers }, (_, caller) => auditCallerLoop((name, args) => client.callTool(name, args), caller, () => stopped, counters).catch((error: unknown) => {
        failure ??= error as Error;
        stopped = true; // one caller failed: every caller stops
      }));
    },
    answered: () => answered,
    busy: () => busy,
    failed: () => failure !== undefined,
    async stop() {
      // The connection stays open: a stdio server ends with its stdin, and the drain after the
      // calls needs it running (it is stopped, SIGTERM, after the drain).
      stopped = true;
      await Promise.all(loops);
      if (failure) throw failure;
    },
  };
}

/** The S3 gateway the runs use (each makes its own database); Postgres is probed so a missing one skips early. */
interface AuditServices {
  readonly s3: S3Service;
}

/** The services, or a reason to skip (named, with the command that starts them). */
async function servicesOrSkip(ctx: BenchContext): Promise<AuditServices | undefined> {
  try {
    const s3 = s3Service();
    const probe = new pg.Client({ connectionString: postgresService().url, connectionTimeoutMillis: 5_000 });
    await probe.connect();
    await probe.end();
    return { s3 };
  } catch (error) {
    ctx.progress(`SKIPPED: the audit benchmark needs Postgres and the Ceph RADOS Gateway (bash scripts/services/up.sh): ${(error as Error).message}`);
    return undefined;
  }
}

export const auditBench: Bench = {
  name: 'audit',
  description: `audit throughput tool call -> S3-confirmed batch, ${callers} MCP callers over HTTP and over stdio, and the staged backlog (needs scripts/services/up.sh)`,
  async run(ctx) {
    const services = await servicesOrSkip(ctx);
    if (!services) return;
    for (const transport of transportsToRun()) await runOver(ctx, services, transport);
  },
};

/** One run of the benchmark over `transport`: its own database, bucket and server. */
async function runOver(ctx: BenchContext, services: AuditServices, transport: AuditTransport): Promise<void> {
  const on = transportNames[transport];
  const runMs = ctx.quick ? runMsQuick : runMsFull;
  const database = await freshPostgresDatabase('benchaudit');
  const s3 = new S3Client({
    endpoint: services.s3.endpoint, region: services.s3.region, forcePathStyle: true,
    credentials: { accessKeyId: services.s3.accessKeyId, secretAccessKey: services.s3.secretAccessKey },
  });
  // Objects stay under COMPLIANCE retention for a day: the bucket cannot be removed after.
  const bucket = `ioboxx-bench-audit-${process.pid}-${Date.now()}`;
  let server: ServerChild | undefined;
  let sql: pg.Client | undefined;
  let load: (CallLoad & { start(): void }) | undefined;
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    // Each transport's server on its own data dir: the other run's access log is not this run's work.
    const serverDataDir = path.join(ctx.dataDir, `server-${transport}`);
    mkdirSync(serverDataDir, { recursive: true });
    ctx.progress(`over ${on}`);
    server = await startServer(transport, {
      IOBOXX_DATA_DIR: serverDataDir,
      DATABASE_URL: database.url,
      S3_ENDPOINT: services.s3.endpoint,
      S3_REGION: services.s3.region,
      S3_BUCKET: bucket,
      AWS_ACCESS_KEY_ID: services.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: services.s3.secretAccessKey,
      IOBOXX_AUDIT_RETENTION_DAYS: '1',
      // One tenant's capacity is measured: its fair-share rate (2,000 calls/s by default, a policy
      // between tenants, not a capacity) is raised as an operator of one busy tenant would.
      IOBOXX_TENANT_RATE_PER_S: '100000',
      IOBOXX_TENANT_BURST: '100000',
    }, (line) => ctx.progress(`server: ${line}`));
    if (server.url !== undefined) {
      const era = process.env.IOBOXX_BENCH_AUDIT_ERA === 'newer' ? 'newer' : 'older';
      const client: CallerClientKind = process.env.IOBOXX_BENCH_AUDIT_CLIENT === 'sdk' ? 'sdk' : 'lean';
      ctx.progress(`callers: ${client === 'lean' ? 'lean client (bench/audit-http-client.ts: HTTP/1.1 keep-alive on its own socket)' : era === 'older' ? 'SDK 1.x Client' : 'SDK 2.x Client'}, ${era === 'older' ? '2025-11-25 session' : '2026-07-28'} over Streamable HTTP`);
      load = await startCallerThreads(`${server.url}/mcp`, era, client);
    } else {
      ctx.progress('callers: lean stdio client (bench/audit-stdio-client.ts), their calls in flight together on the one connection');
      load = await startStdioCallers(server);
    }
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    ctx.progress(`server ${server.url ?? `pid ${server.child.pid} (stdio)`}, bucket ${bucket}, ${callers} callers, ${runMs / 1000} s of calls`);

    const samples: Sample[] = [];
    const workAtStart = await countWork(server.url, sql);
    const startMs = performance.now();
    load.start();
    let failure: unknown;
    // A caller that fails ends the run early (its error is rethrown below).
    const watch = (async () => {
      while (performance.now() - startMs < runMs && !load.failed()) {
        const nextMs = (samples.length + 1) * sampleEveryMs;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, nextMs - (performance.now() - startMs))));
        const sample = await sampleOnce(sql!, load.answered(), startMs, server!.child.pid);
        samples.push(sample);
        ctx.progress(`t=${(sample.atMs / 1000).toFixed(0)} s calls=${sample.calls} unstaged=${Math.max(0, sample.calls - sample.stagedThrough)} staged=${sample.staged} shipped=${sample.shipped}`);
      }
    })();
    await watch.catch((error: unknown) => (failure = error));
    const callsEndMs = performance.now() - startMs;
    await load.stop().catch((error: unknown) => (failure ??= error));
    if (failure !== undefined) throw failure;
    const calls = load.answered();
    // Postgres publishes its statistics about every 500 ms: force them out before reading.
    await sql.query('select pg_stat_force_next_flush()').catch(() => undefined);
    const workAtEnd = await countWork(server.url, sql);
    const toolCallsPerSec = (calls * 1000) / callsEndMs;

    // Drain: every answered call staged and shipped, nothing left staged (bounded).
    let last = await sampleOnce(sql, calls, startMs, server.child.pid);
    let progressAtMs = last.atMs;
    while (!(last.shipped >= calls && last.staged === 0) && last.atMs - callsEndMs < drainWaitMsMax && last.atMs - progressAtMs < drainStallMsMax) {
      await new Promise((resolve) => setTimeout(resolve, sampleEveryMs / 4));
      const next = await sampleOnce(sql, calls, startMs, server.child.pid);
      if (next.shipped > last.shipped) progressAtMs = next.atMs;
      last = next;
    }
    const drained = last.shipped >= calls && last.staged === 0;
    const wallMs = last.atMs;
    const audited = Math.min(last.shipped, calls);
    if (!drained) ctx.progress(`drain did not finish (bounds: ${drainWaitMsMax} ms, or ${drainStallMsMax} ms without progress): shipped ${last.shipped} of ${calls} calls, ${last.staged} still staged`);

    const secondHalf = samples.filter((s) => s.atMs >= runMs / 2);
    const stagedSlope = slopePerSec(secondHalf.map((s) => ({ atMs: s.atMs, y: s.staged })));
    const inFlightSlope = slopePerSec(secondHalf.map((s) => ({ atMs: s.atMs, y: s.calls - s.shipped })));
    const shippedSlope = slopePerSec(secondHalf.map((s) => ({ atMs: s.atMs, y: s.shipped })));
    const halfSec = (runMs / 2) / 1000;
    const stagedMax = Math.max(0, ...samples.map((s) => s.staged));
    const stagedAtEnd = samples.at(-1)?.staged ?? 0;
    const unstagedMax = Math.max(0, ...samples.map((s) => s.calls - s.stagedThrough));
    const cycleRows = (toolCallsPerSec * shipCycleMs) / 1000;
    const shippedInSecondHalf = (samples.at(-1)?.shipped ?? 0) - (secondHalf[0]?.shipped ?? 0);
    const stalled = shippedInSecondHalf <= 0 && calls > 0;
    const grew = stalled || stagedSlope * halfSec > cycleRows;
    const inFlightGrew = stalled || inFlightSlope * halfSec > cycleRows;
    const auditedPerSec = (audited * 1000) / wallMs;

    ctx.emit({ metric: `audited calls/s end to end, ${on} (${callers} callers, incl. drain)`, unit: 'calls/s', ours: auditedPerSec, better: 'higher' });
    ctx.emit({ metric: `tool calls/s, ${on} (${callers} callers, object_put/get)`, unit: 'calls/s', ours: toolCallsPerSec, better: 'higher' });
    ctx.emit({ metric: `shipped to S3 while calling, ${on} (2nd-half trend)`, unit: 'events/s', ours: shippedSlope, better: 'higher' });
    ctx.emit({ metric: `staged backlog, max, ${on}`, unit: 'rows', ours: stagedMax, better: 'lower' });
    ctx.emit({ metric: `staged backlog at end of calls, ${on}`, unit: 'rows', ours: stagedAtEnd, better: 'lower' });
    ctx.emit({ metric: `staged backlog trend, 2nd half, ${on}`, unit: 'rows/s', ours: stagedSlope, better: 'lower' });
    ctx.emit({ metric: `answered, not yet staged, max, ${on}`, unit: 'rows', ours: unstagedMax, better: 'lower' });
    ctx.emit({ metric: `answered, not yet in S3, trend 2nd half, ${on}`, unit: 'rows/s', ours: inFlightSlope, better: 'lower' });
    ctx.emit({ metric: `drain after last call, ${on}`, unit: 'ms', ours: wallMs - callsEndMs, better: 'lower' });
    const perCall = (n: number) => n / Math.max(1, calls);
    if (server.url !== undefined) {
      // The server's own counters: read from its /metrics, which only the HTTP server has.
      ctx.emit({ metric: `store transactions per call, ${on}`, unit: 'tx', ours: perCall(workAtEnd.commits - workAtStart.commits), better: 'lower' });
      ctx.emit({ metric: `fdatasyncs per call, ${on}`, unit: 'syncs', ours: perCall(workAtEnd.fdatasyncs - workAtStart.fdatasyncs), better: 'lower' });
      ctx.emit({ metric: `server main thread busy per call (event loop), ${on}`, unit: 'ms', ours: 1000 * perCall(workAtEnd.serverLoopBusySec - workAtStart.serverLoopBusySec), better: 'lower' });
      ctx.emit({ metric: `fdatasyncs per call on the main thread (inline), ${on}`, unit: 'syncs', ours: perCall(workAtEnd.fdatasyncsInline - workAtStart.fdatasyncsInline), better: 'lower' });
    }
    ctx.emit({ metric: `Postgres transactions per call, ${on}`, unit: 'tx', ours: perCall(workAtEnd.pgTransactions - workAtStart.pgTransactions), better: 'lower' });
    ctx.emit({ metric: `S3 batches per 1,000 calls, ${on}`, unit: 'puts', ours: 1000 * perCall(workAtEnd.s3Batches - workAtStart.s3Batches), better: 'lower' });
    // CPU per call is the load-robust figure (wall-clock rates swing with whoever else runs
    // here); taken over the 2nd half, past start-up and JIT warm-up.
    const halfFirst = secondHalf[0];
    const halfLast = samples.at(-1);
    const halfCalls = halfFirst && halfLast ? halfLast.calls - halfFirst.calls : 0;
    if (halfFirst && halfLast && halfCalls > 0) {
      const serverCpuMsPerCall = (halfLast.serverCpuMs - halfFirst.serverCpuMs) / halfCalls;
      const clientCpuMsPerCall = (halfLast.benchCpuMs - halfFirst.benchCpuMs) / halfCalls;
      ctx.emit({ metric: `server CPU per call, 2nd half, ${on}`, unit: 'ms', ours: serverCpuMsPerCall, better: 'lower' });
      ctx.emit({ metric: `bench client CPU per call, 2nd half, ${on}`, unit: 'ms', ours: clientCpuMsPerCall, better: 'lower' });
      // What the two processes' CPU per call would allow if this machine's cores were theirs alone
      // (Postgres and the gateway not counted): a load-robust bound, not a measured rate.
      const cores = availableParallelism();
      ctx.emit({
        metric: `CPU-bound ceiling on ${cores} idle cores (server + client CPU per call), ${on}`, unit: 'calls/s',
        ours: (cores * 1000) / Math.max(1e-6, serverCpuMsPerCall + clientCpuMsPerCall), better: 'higher',
      });
    }

    ctx.progress(`${calls} calls answered (${load.busy()} refused busy) in ${(callsEndMs / 1000).toFixed(1)} s; ${audited} audited in S3 by ${(wallMs / 1000).toFixed(1)} s${drained ? '' : ' (drain incomplete)'}`);
    ctx.progress(`target >= ${targetAuditedPerSec.toLocaleString('en-US')} audited calls/s end to end over ${on}: ${auditedPerSec >= targetAuditedPerSec ? 'MET' : 'NOT MET'} (${Math.round(auditedPerSec)}/s)`);
    ctx.progress(`staged backlog: ${grew ? 'GREW' : 'bounded'} (2nd-half trend ${stagedSlope.toFixed(1)} rows/s, max ${stagedMax}, tolerance one ship cycle = ${Math.round(cycleRows)} rows${stalled ? '; nothing shipped in the 2nd half' : ''}); answered-not-in-S3: ${inFlightGrew ? 'GREW' : 'bounded'} (${inFlightSlope.toFixed(1)} rows/s)`);
  } catch (error) {
    if (server) ctx.progress(`server stderr (tail):\n${server.stderrTail()}`);
    throw error;
  } finally {
    await load?.stop().catch(() => undefined);
    await server?.stop();
    await sql?.end().catch(() => undefined);
    await database.drop().catch((error: unknown) => ctx.progress(`could not drop the bench database: ${(error as Error).message}`));
    s3.destroy();
  }
}
