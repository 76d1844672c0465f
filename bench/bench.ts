/**
 * What a benchmark is: a name and a function that measures and emits figures. A new
 * benchmark (for example the MCP-level ones, over stdio and HTTP) is one file exporting a
 * `Bench` plus one line in `benches` in run.ts.
 */
import type { Figure } from './report.js';

export interface BenchContext {
  /** Small sizes and short runs: a smoke test of the harness, not figures to quote. */
  readonly quick: boolean;
  /** A fresh directory for this benchmark's files, on the same filesystem as a store's data. */
  readonly dataDir: string;
  /** Prints one figure now (table row or JSON line). */
  emit(figure: Figure): void;
  /** Progress for the human watching, on stderr (stdout carries only figures). */
  progress(message: string): void;
  /**
   * process.memoryUsage() once garbage is really gone (gc exposed at start-up, so memory figures
   * are honest): several collections with turns of the
   * loop between, because buffers' memory and finalisers are released lazily after a gc() (one
   * collection alone left a closed 1M-object store's buffers in a "before" figure).
   */
  settledMemory(): Promise<NodeJS.MemoryUsage>;
}

export interface Bench {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<void>;
}
