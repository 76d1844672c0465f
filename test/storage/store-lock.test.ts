/**
 * The store LOCK (storage/store-lock.ts) between real processes: of several taking it at the same
 * moment exactly one wins; a LOCK naming a pid that now belongs to another process (a crash, then
 * pid reuse) or a dead one is taken over; one naming a live holder is refused, naming it.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { MemoryError } from '../../storage/errors.js';
import { processStartTime } from '../../storage/io/process-runs.js';
import { lockFileBytesMax, lockFileName, lockHolder, takeStoreLock } from '../../storage/store-lock.js';
import { countingFileLayer } from '../support/counting-file-layer.js';
import { childExit } from '../support/child-exit.js';

const taker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'lock-taker.ts');
const takersCount = 4;
const racesCount = 5;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ioboxx-lock-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function startTaker(): { child: ChildProcessWithoutNullStreams; lines: AsyncIterator<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', taker, dir]);
  return { child, lines: createInterface({ input: child.stdout })[Symbol.asyncIterator]() };
}

async function nextLine(lines: AsyncIterator<string>): Promise<string> {
  const { value, done } = await lines.next();
  if (done === true) throw new Error('taker ended early');
  return value;
}

describe('store LOCK', () => {
  /** A pid that belonged to a process which has ended (its LOCK is a crash's leftover). */
  async function endedPid(): Promise<number> {
    const ended = spawn(process.execPath, ['-e', '']);
    await childExit(ended);
    return ended.pid!;
  }

  const starts: [string, () => Promise<void>][] = [
    ['no LOCK', async () => undefined],
    // Every taker finds it stale and clears it: one clearer at a time, so none removes the winner's LOCK.
    ['a stale LOCK (its process ended)', async () => writeFile(path.join(dir, lockFileName), `${await endedPid()} ${processStartTime(process.pid)}`)],
  ];
  test.each(starts)(`${takersCount} processes taking it at once from %s, ${racesCount} times: exactly one wins each time`, async (_, before) => {
    for (let race = 0; race < racesCount; race++) {
      await before();
      const takers = Array.from({ length: takersCount }, startTaker);
      try {
        for (const t of takers) expect(await nextLine(t.lines)).toBe('ready');
        for (const t of takers) t.child.stdin.write('go\n');
        const outcomes = await Promise.all(takers.map((t) => nextLine(t.lines)));
        expect(outcomes.filter((o) => o === 'took'), outcomes.join(' | ')).toHaveLength(1);
        for (const refused of outcomes.filter((o) => o !== 'took')) expect(refused).toMatch(/^refused store .* is open in process \d+/);
      } finally {
        for (const t of takers) t.child.stdin.end();
        await Promise.all(takers.map((t) => childExit(t.child)));
      }
      expect(lockHolder(dir), 'released when its holder ended').toBeNull();
      expect((await readdir(dir)).filter((name) => name !== lockFileName), 'files of the taking left behind').toEqual([]);
    }
  }, 120_000);

  test('a crashed clearer\'s LOCK.clearing and a crashed taker\'s own file do not block the next taker, and are removed', async () => {
    const pid = await endedPid();
    await writeFile(path.join(dir, lockFileName), `${pid} 1`);
    await writeFile(path.join(dir, 'LOCK.clearing'), `${pid} 1`);
    await writeFile(path.join(dir, `LOCK.${pid}-0`), `${pid} 1`);
    const release = await takeStoreLock(dir, nodeFileLayer);
    try {
      expect(lockHolder(dir)).toBe(process.pid);
      expect((await readdir(dir)).sort()).toEqual([lockFileName]);
    } finally {
      await release();
    }
  });

  test('a LOCK naming a live pid with another start time (the pid was reused) is stale and taken over', async () => {
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    await writeFile(path.join(dir, lockFileName), `${process.pid} 1`);
    expect(lockHolder(dir)).toBeNull();
    const release = await takeStoreLock(dir, nodeFileLayer);
    try {
      expect(await readFile(path.join(dir, lockFileName), 'utf8')).toBe(`${process.pid} ${processStartTime(process.pid)}`);
      expect(lockHolder(dir)).toBe(process.pid);
      await expect(takeStoreLock(dir, nodeFileLayer)).rejects.toThrow('already open in this process');
    } finally {
      await release();
    }
  });

  test('a LOCK of a process that ended is taken over; one of a live process is refused naming it', async () => {
    const ended = spawn(process.execPath, ['-e', '']);
    await childExit(ended);
    await writeFile(path.join(dir, lockFileName), `${ended.pid} ${processStartTime(process.pid)}`);
    await (await takeStoreLock(dir, nodeFileLayer))();

    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200)); // its /proc entry settles
      await writeFile(path.join(dir, lockFileName), `${live.pid} ${processStartTime(live.pid!)}`);
      await expect(takeStoreLock(dir, nodeFileLayer)).rejects.toThrow(`is open in process ${live.pid}`);
      // A bare pid (a LOCK written by an older version) still counts while that process lives.
      await writeFile(path.join(dir, lockFileName), String(live.pid));
      await expect(takeStoreLock(dir, nodeFileLayer)).rejects.toThrow(`is open in process ${live.pid}`);
    } finally {
      live.kill('SIGKILL');
    }
  });

  test('a LOCK of a process that was killed but not yet reaped (a zombie) is taken over', async () => {
    // The child is killed only once its parent has been exec'ed into `sleep 60`, which never
    // waits for it: a zombie. (A child that ended on its own could end before the exec, and the
    // shell, dash, reaped it: under load no zombie was ever made.)
    const parent = spawn('sh', ['-c', 'sleep 60 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number((await nextLine(createInterface({ input: parent.stdout })[Symbol.asyncIterator]())).trim());
      await pollUntil(() => readFileSync(`/proc/${parent.pid}/comm`, 'utf8').trim() === 'sleep', 'the shell was exec\'ed into sleep');
      process.kill(zombie, 'SIGKILL');
      await pollUntil(() => readFileSync(`/proc/${zombie}/stat`, 'utf8').replace(/^.*\) /s, '')[0] === 'Z', 'the killed child became a zombie');
      await writeFile(path.join(dir, lockFileName), `${zombie} ${processStartTime(zombie)}`);
      expect(lockHolder(dir), 'a zombie holds nothing').toBeNull();
      const release = await takeStoreLock(dir, nodeFileLayer);
      try {
        expect(lockHolder(dir)).toBe(process.pid);
      } finally {
        await release();
      }
    } finally {
      parent.kill('SIGKILL');
    }
  });

  /** Waits (10 ms turns, 5 s at most) until `done` holds. */
  async function pollUntil(done: () => boolean, what: string): Promise<void> {
    for (let i = 0; !done(); i++) {
      expect(i, what).toBeLessThan(500);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Takes the lock with a deadline: before, a LOCK directory kept the taker linking and reading it for ever. */
  async function refusal(): Promise<string> {
    const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('takeStoreLock still running after 5 s')), 5_000).unref());
    const error = await Promise.race([takeStoreLock(dir, countingFileLayer()).then(() => undefined, (e: unknown) => e), deadline]);
    expect(error).toBeInstanceOf(MemoryError);
    expect((error as MemoryError).code).toBe('conflict');
    expect((error as MemoryError).hint).toContain('move ');
    return (error as MemoryError).message;
  }

  test.each([
    ['a directory', (file: string) => mkdir(file), 'LOCK is a directory, not a regular file'],
    ['a FIFO (opening it to read would wait for a writer)', async (file: string) => execFileSync('mkfifo', [file]), 'LOCK is a FIFO, not a regular file'],
  ])('a LOCK that is %s is refused, naming it, and left as it was', async (_, make, why) => {
    const file = path.join(dir, lockFileName);
    await make(file);
    expect(await refusal()).toBe(`store ${dir} cannot be opened: ${why}; ioboxx-memory makes LOCK as a small file naming its process`);
    expect(lockHolder(dir), 'a status reads no holder, without waiting on it').toBeNull();
    expect(await readdir(dir), 'nothing made or removed').toEqual([lockFileName]);
  });

  test('a LOCK over lockFileBytesMax is refused by its size, unread; a LOCK.clearing directory beside a stale LOCK is refused, naming it', async () => {
    const file = path.join(dir, lockFileName);
    await writeFile(file, ' '.repeat(lockFileBytesMax + 1));
    const layer = countingFileLayer();
    const error = await takeStoreLock(dir, layer).then(() => undefined, (e: unknown) => e);
    expect((error as Error).message).toBe(`store ${dir} cannot be opened: LOCK has ${lockFileBytesMax + 1} bytes, over ${lockFileBytesMax} (lockFileBytesMax); ioboxx-memory makes LOCK as a small file naming its process`);
    expect(layer.bytesRead).toBe(0);
    expect(lockHolder(dir)).toBeNull();

    await writeFile(file, `${await endedPid()} 1`);
    await mkdir(path.join(dir, 'LOCK.clearing'));
    expect(await refusal()).toContain('cannot be opened: LOCK.clearing is a directory, not a regular file; ioboxx-memory makes LOCK.clearing as a small file');
    expect((await readdir(dir)).sort()).toEqual([lockFileName, 'LOCK.clearing']);
  });
});

