/**
 * Worker thread body of the embedded control-plane database: PGlite and its loopback socket
 * server live here so that PGlite's start (seconds of synchronous WASM work) and its query
 * execution never stall the main thread's event loop (commits, acks, shutdown timers).
 * Protocol with the parent: it posts {port} once listening, or {error}; on a 'close' message
 * it stops the socket server, closes the database (a clean checkpoint) and posts 'closed'.
 */
import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { gunzipSync } from 'node:zlib';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { clusterTarBytesMax, readClusterTemplate } from './embedded-cluster-template.js';
import { embeddedStartFailureText } from './embedded-start-failure.js';

export interface EmbeddedPostgresWorkerData {
  readonly dataDir: string;
  readonly connectionsMax: number;
  /** A cluster template other than the build's (tests). */
  readonly clusterTemplateFile?: string;
}

export type EmbeddedPostgresWorkerMessage = { readonly port: number } | { readonly error: string } | 'closed';

const port = parentPort;
if (port === null) throw new Error('embedded-postgres-worker runs as a worker thread only');
const data = workerData as EmbeddedPostgresWorkerData;

/**
 * A new data dir starts from the build's cluster template when there is one (see
 * embedded-cluster-template.ts). Writing the cluster is not atomic: a marker beside the data dir
 * (`<data dir>.initialising`) stands while it is written, so a start killed meanwhile (PG_VERSION
 * written, the rest not) is started afresh by the next one instead of refused at every start.
 */
async function openDatabase(): Promise<PGlite> {
  const marker = `${data.dataDir}.initialising`;
  const fresh = !existsSync(path.join(data.dataDir, 'PG_VERSION')) || existsSync(marker);
  if (!fresh) return PGlite.create({ dataDir: data.dataDir });
  await writeFile(marker, '');
  await emptyDataDir(); // what a killed first start wrote
  const db = await initialiseDatabase();
  await rm(marker, { force: true });
  return db;
}

async function initialiseDatabase(): Promise<PGlite> {
  const template = await readClusterTemplate(data.clusterTemplateFile).catch(() => undefined);
  // Unpacked here: PGlite's own gunzip reports a damaged file as an error this thread cannot catch.
  const tar = template === undefined ? undefined : gunzipOrUndefined(template);
  if (tar === undefined) return PGlite.create({ dataDir: data.dataDir });
  try {
    return await PGlite.create({ dataDir: data.dataDir, loadDataDir: new Blob([tar]) });
  } catch {
    // A template this PGlite cannot load: initialise the cluster as without one.
    await emptyDataDir();
    return PGlite.create({ dataDir: data.dataDir });
  }
}

async function emptyDataDir(): Promise<void> {
  for (const entry of await readdir(data.dataDir)) await rm(path.join(data.dataDir, entry), { recursive: true, force: true });
}

function gunzipOrUndefined(bytes: Buffer): Buffer | undefined {
  try {
    return gunzipSync(bytes, { maxOutputLength: clusterTarBytesMax });
  } catch {
    return undefined;
  }
}

async function start(): Promise<{ db: PGlite; server: PGLiteSocketServer }> {
  const db = await openDatabase();
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: data.connectionsMax });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    throw error;
  }
  return { db, server };
}

start().then(({ db, server }) => {
  // getServerConn() is "127.0.0.1:PORT" once listening on port 0.
  const conn = server.getServerConn();
  const listening = Number(conn.slice(conn.lastIndexOf(':') + 1));
  port.once('message', () => {
    void (async () => {
      await server.stop();
      await db.close();
      port.postMessage('closed' satisfies EmbeddedPostgresWorkerMessage);
      port.close();
    })();
  });
  port.postMessage({ port: listening } satisfies EmbeddedPostgresWorkerMessage);
}, (error: unknown) => {
  port.postMessage({ error: embeddedStartFailureText(error, data.dataDir) } satisfies EmbeddedPostgresWorkerMessage);
  port.close();
});
