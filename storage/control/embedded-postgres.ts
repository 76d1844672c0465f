/**
 * The embedded control-plane database: PGlite (real Postgres in WASM) persisted under the
 * data dir, served on loopback through pglite-socket so that the one SQL path (`pg`) is the
 * same as against Postgres/Supabase.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { MemoryError } from '../errors.js';

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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite is a single process's database: a second process opening the same directory (say,
 * `audit ship` beside a running server) would corrupt it. A pid file guards it; a stale one
 * (its process gone) is taken over.
 */
async function lockDataDir(lockPath: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockPath, String(process.pid), { flag: 'wx' });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
        throw new MemoryError(
          'conflict',
          `the embedded control-plane database ${lockPath.replace(/\.lock$/, '')} is open in process ${pid}`,
          'stop that process, or point both at one Postgres with DATABASE_URL',
        );
      }
      await rm(lockPath, { force: true });
    }
  }
  throw new MemoryError('conflict', `could not lock ${lockPath}`);
}

export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedPostgres> {
  await mkdir(dataDir, { recursive: true });
  const lockPath = `${dataDir}.lock`;
  await lockDataDir(lockPath);
  let db: PGlite;
  try {
    db = await PGlite.create({ dataDir });
  } catch (error) {
    await rm(lockPath, { force: true });
    throw error;
  }
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: embeddedConnectionsMax });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    await rm(lockPath, { force: true });
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
      await rm(lockPath, { force: true });
    },
  };
}
