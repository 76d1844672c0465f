/**
 * Peer: SQLite (better-sqlite3 12) in WAL mode with synchronous=FULL, one transaction per
 * upsert of the same row shape as ours. The connection lives in a worker thread so that
 * N async callers can queue on it honestly; each caller's latency includes that queueing.
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

  static async open(dir: string): Promise<SqlitePeer> {
    const worker = startModuleWorker(new URL('./sqlite-worker.ts', import.meta.url).href, { file: path.join(dir, 'peer.sqlite') });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    return new SqlitePeer(worker);
  }

  upsert(caller: number, seq: number): Promise<void> {
    const requestId = this.nextRequestId++;
    const request: SqliteRequest = { requestId, object: benchObject(caller, seq) };
    return new Promise((resolve) => {
      this.waiting.set(requestId, resolve);
      this.worker.postMessage(request);
    });
  }

  load(options: { concurrency: number; durationMs: number; warmupMs: number }): Promise<ClosedLoopResult> {
    return runClosedLoop({ ...options, operation: (caller, seq) => this.upsert(caller, seq) });
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage('close');
    await exited;
  }
}
