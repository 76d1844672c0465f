/**
 * Worker side of the SQLite peer: one better-sqlite3 connection (WAL, synchronous=FULL), one
 * transaction per upsert, requests served one at a time in arrival order. SQLite calls are
 * synchronous, so concurrent callers on the main thread queue here, as they would in a
 * server that shares one connection.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import type { BenchObject } from '../workload.js';

export interface SqliteRequest {
  readonly requestId: number;
  readonly object: BenchObject;
}

const { file } = workerData as { file: string };
const db = new Database(file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec(`CREATE TABLE IF NOT EXISTS objects (
  id TEXT PRIMARY KEY, type TEXT NOT NULL, attributes TEXT NOT NULL, version INTEGER NOT NULL)`);
const upsert = db.prepare(`INSERT INTO objects (id, type, attributes, version) VALUES (?, ?, ?, 1)
  ON CONFLICT(id) DO UPDATE SET type = excluded.type, attributes = excluded.attributes, version = objects.version + 1`);
const upsertOne = db.transaction((o: BenchObject) => upsert.run(o.id, o.type, JSON.stringify(o.attributes)));

parentPort!.on('message', (message: SqliteRequest | 'close') => {
  if (message === 'close') {
    db.close();
    parentPort!.close();
    return;
  }
  upsertOne(message.object);
  parentPort!.postMessage(message.requestId);
});
parentPort!.postMessage('ready');
