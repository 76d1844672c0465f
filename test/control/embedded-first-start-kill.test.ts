/**
 * The server SIGKILLed during the embedded database's very first start (PGlite unpacking its
 * cluster into the data dir): the next start initialises the cluster again and starts. Before,
 * a kill after PG_VERSION was written left a cluster every later start refused ("PGlite failed to
 * initialize properly"): the control plane never came up again without an operator wiping it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startEmbeddedPostgres } from '../../storage/control/embedded-postgres.js';
import { childExit } from '../support/child-exit.js';

const child = join(import.meta.dirname, 'embedded-start-child.ts');
let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ioboxx-embedded-first-kill-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** Starts the child on `dataDir` and SIGKILLs it as soon as the cluster's PG_VERSION appears. */
async function killDuringFirstStart(dataDir: string): Promise<void> {
  const process_ = spawn(process.execPath, ['--import', 'tsx', child, dataDir], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = childExit(process_);
  let ended = false;
  void exited.then(() => (ended = true));
  while (!ended && !existsSync(join(dataDir, 'PG_VERSION'))) await new Promise((resolve) => setTimeout(resolve, 1));
  process_.kill('SIGKILL');
  await exited;
}

test('a first start killed while the cluster is being written is started afresh by the next start', async () => {
  const dataDir = join(work, 'pg');
  await killDuringFirstStart(dataDir);
  const embedded = await startEmbeddedPostgres(dataDir);
  try {
    const client = new pg.Client({ connectionString: embedded.url });
    await client.connect();
    try {
      expect((await client.query<{ one: number }>('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  } finally {
    await embedded.close();
  }
}, 120_000);
