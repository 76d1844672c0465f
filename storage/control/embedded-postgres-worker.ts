/**
 * Worker thread body of the embedded control-plane database: PGlite and its loopback socket
 * server live here so that PGlite's start (seconds of synchronous WASM work) and its query
 * execution never stall the main thread's event loop (commits, acks, shutdown timers).
 * Protocol with the parent: it posts {port} once listening, or {error}; on a 'close' message
 * it stops the socket server, closes the database (a clean checkpoint) and posts 'closed'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedPostgresWorkerData {
  readonly dataDir: string;
  readonly connectionsMax: number;
}

export type EmbeddedPostgresWorkerMessage = { readonly port: number } | { readonly error: string } | 'closed';

const port = parentPort;
if (port === null) throw new Error('embedded-postgres-worker runs as a worker thread only');
const data = workerData as EmbeddedPostgresWorkerData;

async function start(): Promise<{ db: PGlite; server: PGLiteSocketServer }> {
  const db = await PGlite.create({ dataDir: data.dataDir });
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
  port.postMessage({ error: (error as Error).message ?? String(error) } satisfies EmbeddedPostgresWorkerMessage);
  port.close();
});
