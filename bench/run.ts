/**
 * `npm run bench [-- --json] [--only NAME[,NAME]] [--quick]`
 *
 * Runs each benchmark in turn and prints its figures beside a peer measured in the same run:
 * a table by default, one JSON object per line with --json (see report.ts). Data lives in a
 * fresh directory under .bench-data/ (same filesystem as a store's data dir), removed after.
 *
 * `npm run bench` starts node with --no-memory-reducer. tsx's loader thread sits idle once the
 * modules are loaded, and V8's memory reducer later ran full GCs of 14-29 ms on it (its 48 MB
 * heap) in the middle of a measured loop, on the second of two cores (--trace-gc: in the 64- and
 * 256-caller engine loops of two runs). The reducer acts only on an idle isolate; the engine's is
 * busy through every measured loop (the same scavenges, no mark-compact, with the flag and without).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { auditBench } from './audit.js';
import type { Bench, BenchContext } from './bench.js';
import { engineBench } from './engine.js';
import { fairnessBench } from './fairness.js';
import { mcpOursBench } from './mcp-ours.js';
import { mcpReferenceBench } from './mcp-reference.js';
import { benchLine, jsonLine, tableHeader, tableRow } from './report.js';
import { sizingBench } from './sizing.js';
import { tenantsBench } from './tenants.js';
import { vectorBench } from './vector.js';
import { wsBench } from './ws.js';

/** Every benchmark, in the order they run. Add new ones here. */
export const benches: readonly Bench[] = [engineBench, vectorBench, mcpReferenceBench, mcpOursBench, wsBench, fairnessBench, sizingBench, tenantsBench, auditBench];

interface Cli {
  readonly json: boolean;
  readonly quick: boolean;
  readonly only: readonly string[] | undefined;
}

function parseCli(argv: readonly string[]): Cli {
  const { values } = parseArgs({
    args: [...argv],
    options: { json: { type: 'boolean', default: false }, quick: { type: 'boolean', default: false }, only: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
    strict: true,
  });
  if (values.help) {
    process.stderr.write(`usage: npm run bench -- [--json] [--quick] [--only ${benches.map((b) => b.name).join(',')}]\n`);
    for (const b of benches) process.stderr.write(`  ${b.name.padEnd(14)} ${b.description}\n`);
    process.exit(0);
  }
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  if (only !== undefined && only.length === 0) throw new Error('--only needs a benchmark name');
  const unknown = only?.filter((name) => !benches.some((b) => b.name === name)) ?? [];
  if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${benches.map((b) => b.name).join(', ')}`);
  return { json: values.json, quick: values.quick, only };
}

/** global.gc without requiring --expose-gc on the command line. */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  if (typeof gc !== 'function') throw new Error('could not expose gc');
  return gc;
}

/** Collections with turns of the loop between them, before reading memory (see BenchContext.settledMemory). */
const settleCollections = 4;

async function settledMemory(gc: () => void): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < settleCollections; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage();
}

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2));
  const gc = exposeGc();
  const root = path.resolve('.bench-data');
  mkdirSync(root, { recursive: true });
  if (!cli.json) process.stdout.write(`${tableHeader()}\n`);
  // Recovery figures depend on it (docs/OPERATIONS.md, "Memory"): say which way this run went.
  process.stderr.write(`bench: GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES ?? '(unset: no huge pages for large buffers)'}\n`);
  let failed = false;
  for (const bench of benches) {
    if (cli.only && !cli.only.includes(bench.name)) continue;
    const dataDir = mkdtempSync(path.join(root, `${bench.name}-`));
    const ctx: BenchContext = {
      quick: cli.quick,
      dataDir,
      emit: (figure) => {
        const line = benchLine(bench.name, figure);
        process.stdout.write(`${cli.json ? jsonLine(line) : tableRow(line)}\n`);
      },
      progress: (message) => process.stderr.write(`[${bench.name}] ${message}\n`),
      settledMemory: () => settledMemory(gc),
    };
    const startMs = performance.now();
    try {
      await bench.run(ctx);
      ctx.progress(`done in ${((performance.now() - startMs) / 1000).toFixed(1)} s`);
    } catch (error) {
      failed = true;
      process.stderr.write(`[${bench.name}] FAILED: ${(error as Error).stack ?? String(error)}\n`);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  process.exitCode = failed ? 1 : 0;
}

await main().catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).message}\n`);
  process.exitCode = 2;
});
