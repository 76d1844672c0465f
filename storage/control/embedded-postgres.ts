/**
 * The embedded control-plane database: PGlite (real Postgres in WASM) persisted under the
 * data dir, served on loopback through pglite-socket so that the one SQL path (`pg`) is the
 * same as against Postgres/Supabase.
 */
import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * PGlite is one backend: the socket server interleaves connections per protocol message, so
 * two `pg` clients could clobber each other's unnamed statement. One connection at a time
 * keeps each extended-protocol exchange whole; queries queue in the pool instead.
 */
export const embeddedPoolMax = 1;
/** Room for the pool plus the migration connection and a test's second pool. */
export const embeddedConnectionsMax = 8;

export interface EmbeddedPostgres {
  readonly url: string;
  readonly dataDir: string;
  close(): Promise<void>;
}

export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  await mkdir(dataDir, { recursive: true });
  const db = await PGlite.create({ dataDir });
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: embeddedConnectionsMax });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    throw error;
  }
  // getServerConn() is "127.0.0.1:PORT" once listening on port 0.
  const conn = server.getServerConn();
  const port = Number(conn.slice(conn.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`pglite-socket gave no port (${conn})`);
  let closed = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable`,
    dataDir,
    async close() {
      if (closed) return;
      closed = true;
      await server.stop();
      await db.close();
    },
  };
}
