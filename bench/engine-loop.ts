/**
 * One engine load point on its own, for experiments and traces: `rounds` closed loops of the
 * engine benchmark's upsert at `callers` callers on one fresh store, one JSON line per loop.
 *
 *   node --no-memory-reducer --import tsx bench/engine-loop.ts [--callers 64] [--seconds 3] [--rounds 3] [--skip-log-io]
 *
 * Each loop prints commits/s, commit p50/p99, the store's batch fdatasync p50/p99 (as the main
 * thread sees it) and process CPU per commit. Alternate builds process by process for an A/B:
 * the first loop of a process runs colder than the rest. The full benchmark (`npm run bench`)
 * stays the figure of record; docs/BENCHMARKS.md shows how this loop is traced with perf
 * (bench/fdatasync-trace.ts). With --skip-log-io the commitlog's writes and fdatasyncs are
 * skipped (bench/skipped-log-io.ts): the ceiling of the engine's CPU on this host, not durable.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { runClosedLoop } from './closed-loop.js';
import { BatchSyncs, loadWarmupMs, openStore, upsertCall } from './engine.js';

const callersMax = 4096;
const secondsMax = 600;
const roundsMax = 100;

/** The options, or a one-line error and exit code 2. */
function options(): { callers: number; durationMs: number; rounds: number; parent: string; skipLogIo: boolean } {
  try {
    const { values } = parseArgs({
      options: { callers: { type: 'string', default: '64' }, seconds: { type: 'string', default: '3' }, rounds: { type: 'string', default: '3' }, dir: { type: 'string' }, 'skip-log-io': { type: 'boolean', default: false } },
      strict: true,
    });
    return {
      callers: bounded('callers', values.callers, callersMax),
      durationMs: bounded('seconds', values.seconds, secondsMax) * 1000,
      rounds: bounded('rounds', values.rounds, roundsMax),
      parent: values.dir ?? os.tmpdir(),
      skipLogIo: values['skip-log-io'],
    };
  } catch (error) {
    process.stderr.write(`engine-loop: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
}

/** A whole number in 1..max, or a clear error naming the option. */
function bounded(name: string, text: string, max: number): number {
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= 1 && n <= max)) throw new RangeError(`--${name} must be a whole number in 1..${max}, got ${JSON.stringify(text)}`);
  return n;
}

/** Milliseconds to the microsecond, for the JSON lines. */
const roundToUs = (ms: number): number => Math.round(ms * 1000) / 1000;

const { callers, durationMs, rounds, parent, skipLogIo } = options();
// The store's directory: a fresh one under --dir (the disk to measure) or the system's temp dir.
const dir = mkdtempSync(path.join(parent, 'ioboxx-engine-loop-'));
const syncs = new BatchSyncs();
const store = await openStore(dir, syncs.onBatch, skipLogIo ? new (await import('./skipped-log-io.js')).SkippedLogIoLayer() : undefined);
try {
  for (let round = 0; round < rounds; round++) {
    syncs.reset();
    const loop = await runClosedLoop({ concurrency: callers, durationMs, warmupMs: loadWarmupMs, operation: upsertCall(store) });
    const batch = syncs.samples.summary();
    process.stdout.write(`${JSON.stringify({
      round, callers, ...(skipLogIo ? { logIo: 'skipped' } : {}), commitsPerSec: Math.round(loop.opsPerSec), commitP50Ms: roundToUs(loop.latency.p50Ms), commitP99Ms: roundToUs(loop.latency.p99Ms),
      commitP999Ms: roundToUs(loop.latency.p999Ms), commitMaxMs: roundToUs(loop.latency.maxMs),
      batchFdatasyncP50Ms: roundToUs(batch.p50Ms), batchFdatasyncP99Ms: roundToUs(batch.p99Ms), cpuUsPerCommit: Math.round(loop.cpuUsPerOp * 10) / 10,
    })}\n`);
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
