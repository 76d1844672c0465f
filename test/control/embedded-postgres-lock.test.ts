/**
 * The embedded database's pid file (`<data dir>.lock`): one that holds no live pid is taken over,
 * whatever stands there. A FIFO in its place used to hang the start (its read waited for a writer).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startEmbeddedPostgres } from '../../storage/control/embedded-postgres.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ioboxx-embedded-lock-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

test.each([
  ['a FIFO', (file: string) => execFileSync('mkfifo', [file])],
  ['a file far over a pid\'s size', (file: string) => writeFile(file, '1'.repeat(1 << 20))],
])('a pid file that is %s holds no live pid: it is taken over and the database starts', async (_, make) => {
  const dataDir = join(work, `db-${Math.random().toString(36).slice(2)}`);
  await make(`${dataDir}.lock`);
  const embedded = await startEmbeddedPostgres(dataDir);
  try {
    expect(await readFile(`${dataDir}.lock`, 'utf8')).toBe(String(process.pid));
  } finally {
    await embedded.close();
  }
}, 60_000);
