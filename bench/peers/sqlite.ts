/**
 * Peer: SQLite (better-sqlite3 12) in WAL mode with synchronous=FULL, one transaction per
 * upsert of the same row shape as ours. The connection lives in a worker thread so that
 * N async callers can queue on it honestly; each caller's latency includes that queueing.
 * Each load gets a worker of its own, ended when the load is: an idle worker's isolate runs
 * V8's memory reducer (full GCs of 9-24 ms on its thread, seen with --trace-gc within a second
 * of the load's end), which fell in our next measured loop and took CPU from it on two cores.
 */
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { runClosedLoop, type ClosedLoopResult } from '../closed-loop.js';
import { startModuleWorker } from '../../storage/io/module-worker.js';
import { benchObject } from '../workload.js';
import type { SqliteRequest } from './sqlite-worker.js';

export const sqlitePeerName = 'SQLite WAL sync=FULL';

export class SqlitePeer {
  private nextRequestId = 0;
  private readonly waiting = new Map<number, () => void>();

  private constructor(private readonly worker: Worker) {
    worker.on('message', (requestId: number) => {
      const resolve = this.waiting.get(requestId);
      this.waiting.delete(requestId);
      resolve?.();
    });
  }

  /** One closed-loop load on a fresh connection in a fresh worker; the worker is gone when this settles. */
  static async measure(dir: string, options: { concurrency: number; durationMs: number; warmupMs: number }): Promise<ClosedLoopResult> {
    const peer = await SqlitePeer.open(dir);
    try {
      return await runClosedLoop({ ...options, operation: (caller, seq) => peer.upsert(caller, seq) });
    } finally {
      await peer.close();
    }
  }

  private static async open(dir: string): Promise<SqlitePeer> {
    const worker = startModuleWorker(new URL('./sqlite-worker.ts', import.meta.url).href, { file: path.join(dir, 'peer.sqlite') });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    return new SqlitePeer(worker);
  }

  private upsert(caller: number, seq: number): Promise<void> {
    const requestId = this.nextRequestId++;
    const request: SqliteRequest = { requestId, object: benchObject(caller, seq) };
    return new Promise((resolve) => {
      this.waiting.set(requestId, resolve);
      this.worker.postMessage(request);
    });
  }

  private async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('close');
    await exited;
  }
}
