/**
 * The embedded database's pid file (`<data dir>.lock`): one that holds no live pid is taken over,
 * whatever stands there. A FIFO in its place used to hang the start (its read waited for a writer).
 * One a SIGKILLed server left whose pid is now another process's (a container's server restarted
 * as the same pid, a reboot) is taken over too; one of a live holder is refused naming it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startEmbeddedPostgres } from '../../storage/control/embedded-postgres.js';
import { identityOf } from '../../storage/store-lock.js';

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
    expect(await readFile(`${dataDir}.lock`, 'utf8')).toBe(identityOf(process.pid));
  } finally {
    await embedded.close();
  }
}, 60_000);

test('a pid file a killed server left under the pid this process now has (a container restarted as pid 1) is taken over; a live holder is refused naming it; a second start in this process is refused', async () => {
  const dataDir = join(work, 'db-reused-pid');
  // What the killed server wrote: its pid (a bare pid, as older versions wrote it), now ours.
  await writeFile(`${dataDir}.lock`, String(process.pid));
  const embedded = await startEmbeddedPostgres(dataDir);
  try {
    await expect(startEmbeddedPostgres(dataDir)).rejects.toThrow(`is open in process ${process.pid}`);
  } finally {
    await embedded.close();
  }

  // A live process holding it (its own pid and start time): refused, naming that process.
  const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    await writeFile(`${dataDir}.lock`, identityOf(holder.pid!));
    await expect(startEmbeddedPostgres(dataDir)).rejects.toThrow(`is open in process ${holder.pid}`);
    // The same pid with another start time: an earlier process's, now reused: stale.
    await writeFile(`${dataDir}.lock`, `${holder.pid} 1`);
    const again = await startEmbeddedPostgres(dataDir);
    await again.close();
  } finally {
    holder.kill('SIGKILL');
  }
}, 60_000);
