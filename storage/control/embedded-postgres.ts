/**
 * The embedded control-plane database: PGlite (real Postgres in WASM) persisted under the
 * data dir, served on loopback through pglite-socket so that the one SQL path (`pg`) is the
 * same as against Postgres/Supabase. It runs in a worker thread (embedded-postgres-worker.ts):
 * its start and its queries are synchronous WASM work that would otherwise stall the event
 * loop the stores and the server answer on.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import type { Worker } from 'node:worker_threads';
import { MemoryError } from '../errors.js';
import { startModuleWorker } from '../io/module-worker.js';
import { readSmallFileSync } from '../io/read-whole.js';
import type { EmbeddedPostgresWorkerData, EmbeddedPostgresWorkerMessage } from './embedded-postgres-worker.js';
import { holderOf, identityOf } from '../store-lock.js';

/**
 * PGlite is one backend: the socket server interleaves connections per protocol message, so
 * two `pg` clients could clobber each other's unnamed statement. One connection at a time
 * keeps each extended-protocol exchange whole; queries queue in the pool instead.
 */
export const embeddedPoolMax = 1;
/** Room for the pool plus the migration connection and a test's second pool. */
export const embeddedConnectionsMax = 8;
/** A clean close (checkpoint) normally takes well under a second; past this the thread is ended. */
export const embeddedCloseMsMax = 10_000;

export interface EmbeddedPostgres {
  readonly url: string;
  readonly dataDir: string;
  close(): Promise<void>;
}


/** The pid file holds a pid: anything larger, or not a regular file (a FIFO would block the read), holds none. */
const pidFileBytesMax = 64;

function readPidFile(lockPath: string): string {
  try {
    return readSmallFileSync(lockPath, pidFileBytesMax, 'pidFileBytesMax').toString('utf8').trim();
  } catch {
    return '';
  }
}

/** Pid files this process holds (a second start on the same directory in this process is refused too). */
const heldLocks = new Set<string>();

/**
 * PGlite is a single process's database: a second process opening the same directory (say,
 * `audit ship` beside a running server) would corrupt it. A pid file guards it, naming its
 * process as the store LOCK does (`pid starttime`, store-lock.ts); a stale one (its process gone,
 * or its pid now another process's: a reboot, or a container's server restarted as pid 1 again
 * after a SIGKILL) is taken over.
 */
async function lockDataDir(lockPath: string): Promise<void> {
  const conflict = (pid: number) => new MemoryError(
    'conflict',
    `the embedded control-plane database ${lockPath.replace(/\.lock$/, '')} is open in process ${pid}`,
    'stop that process, or point both at one Postgres with DATABASE_URL',
  );
  if (heldLocks.has(lockPath)) throw conflict(process.pid);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockPath, identityOf(process.pid), { flag: 'wx' });
      heldLocks.add(lockPath);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // This process's own pid in it is an earlier process's (this one holds none: see heldLocks).
      const holder = holderOf(readPidFile(lockPath));
      if (holder !== null && holder !== process.pid) throw conflict(holder);
      await rm(lockPath, { force: true });
    }
  }
  throw new MemoryError('conflict', `could not lock ${lockPath}`);
}

/** The worker's next message; an exit or error first is a failure naming it. */
function nextMessage(worker: Worker): Promise<EmbeddedPostgresWorkerMessage> {
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    const onMessage = (message: EmbeddedPostgresWorkerMessage) => { done(); resolve(message); };
    const onError = (error: Error) => { done(); reject(error); };
    const onExit = (code: number) => { done(); reject(new Error(`the embedded database thread ended (exit code ${code})`)); };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

export async function startEmbeddedPostgres(dataDir: string, options: { clusterTemplateFile?: string } = {}): Promise<EmbeddedPostgres> {
  await mkdir(dataDir, { recursive: true });
  const lockPath = `${dataDir}.lock`;
  await lockDataDir(lockPath);
  let worker: Worker;
  let port: number;
  try {
    // The sibling module, compiled or not (the worker starter registers tsx for a .ts one).
    const entry = new URL(`./embedded-postgres-worker.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);
    worker = startModuleWorker(entry, { dataDir, connectionsMax: embeddedConnectionsMax, ...options } satisfies EmbeddedPostgresWorkerData);
    const first = await nextMessage(worker);
    if (typeof first !== 'object' || !('port' in first)) {
      await worker.terminate();
      throw new Error(`the embedded database did not start: ${typeof first === 'object' ? first.error : first}`);
    }
    port = first.port;
    if (!Number.isInteger(port) || port <= 0) throw new Error(`pglite-socket gave no port (${port})`);
  } catch (error) {
    heldLocks.delete(lockPath);
    await rm(lockPath, { force: true });
    throw error;
  }
  // A thread that dies later (a WASM abort) is seen by `pg` as a lost connection; keep the process up.
  worker.on('error', () => undefined);
  let closing: Promise<void> | undefined;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres?sslmode=disable`,
    dataDir,
    close() {
      closing ??= (async () => {
        const closed = nextMessage(worker).catch(() => undefined);
        worker.postMessage('close');
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, embeddedCloseMsMax); });
        await Promise.race([closed, late]);
        clearTimeout(timer);
        await worker.terminate();
        heldLocks.delete(lockPath);
        await rm(lockPath, { force: true });
      })();
      return closing;
    },
  };
}
