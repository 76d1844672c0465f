/**
 * Real-full-disk child (full-disk.test.ts runs it in its own mount namespace, with a small tmpfs
 * mounted on argv[2]). A memory-module store in argv[2]/store commits until the filesystem
 * refuses; a snapshot, a close, an open and the CLI's `store verify` are tried on the full disk;
 * then the ballast file (argv[4] bytes) is deleted and the store goes on (argv[5] puts, a
 * snapshot, argv[6] puts). At the end it is closed and copied to argv[3], outside the tmpfs, for
 * the parent to reopen. Prints one JSON line per event to stdout.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { preparedSegmentFileName } from '../../storage/log/prepared-segment.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { cliCommand, cliEnv } from '../cli/cli-process.js';

const [mount, copyTo] = [process.argv[2]!, process.argv[3]!];
const [ballastBytes, putsAfterFree, putsAfterSnapshot] = process.argv.slice(4, 7).map(Number) as [number, number, number];
// Synchronous: a line written before a crash is not lost in the pipe's buffer.
const say = (event: Record<string, unknown>): void => void writeSync(1, `${JSON.stringify(event)}\n`);
const errorOf = (error: unknown): Record<string, unknown> => {
  const e = error as Error & { code?: string; hint?: string };
  return { code: e.code, message: e.message, ...(e.hint === undefined ? {} : { hint: e.hint }) };
};

const ballast = path.join(mount, 'ballast');
writeFileSync(ballast, Buffer.alloc(ballastBytes, 1));
const dir = path.join(mount, 'store');
// Small segments, so the disk fills across rotations and prepared segments, not only in one file.
const options = { dir, module: memoryModule, segmentBytesMax: 256 * 1024 };
const caller = { tenant: 'full-disk', subject: 'tester' };
let store = await Store.open(options);

/** 16 callers put objects of ~2 KB with distinct ids until each has had `failuresEach` refusals. */
async function fill(phase: string, failuresEach: number, putsMax: number): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async (_, c) => {
    let failures = 0;
    while (failures < failuresEach && next < putsMax) {
      const id = `${phase}-${c}-${next++}`;
      const n = next;
      try {
        const r = await store.call('object_put', { id, type: 'note', attributes: { n, pad: 'x'.repeat(2000) } }, caller);
        say({ ack: r.offset, id, n });
      } catch (error) {
        failures++;
        say({ refused: id, ...errorOf(error) });
      }
    }
  }));
}

/** Fill the filesystem's last pages with a file of its own (the store's refusals leave some bytes free). */
const topUp = path.join(mount, 'top-up');
function fillToTheLastPage(): void {
  try {
    for (;;) appendFileSync(topUp, Buffer.alloc(4096, 2));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  }
}

/** Run `step`, saying under `name` whether it went through or how it was refused. */
async function outcome(name: string, step: () => Promise<Record<string, unknown>>): Promise<void> {
  try {
    say({ [name]: 'done', ...(await step()) });
  } catch (error) {
    say({ [name]: 'refused', ...errorOf(error) });
  }
}

await fill('full', 3, 1_000_000);
await outcome('snapshotWhileFull', async () => ({ offset: (await store.snapshot()).offset }));
// A restart on a disk full to its last page: the close cannot write its checkpoint, and the open
// (once the close's cut of the log's zero tail is taken too) cannot write its LOCK.
fillToTheLastPage();
// The next segment made ahead, if any: the close drops it (and its zeros) before its checkpoint.
say({ preparedBytesAtClose: (statSync(path.join(dir, 'log', preparedSegmentFileName), { throwIfNoEntry: false })?.blocks ?? 0) * 512 });
await outcome('closeWhileFull', async () => (await store.close(), {}));
fillToTheLastPage();
await outcome('openWhileFull', async () => (store = await Store.open(options), {}));
// The operator's check on the full disk: `store verify` takes the LOCK too; `--read-only` changes no file.
for (const [name, flags] of [['verifyWhileFull', []], ['readOnlyVerifyWhileFull', ['--read-only']]] as const) {
  const [command, ...args] = cliCommand(['store', 'verify', '--json', ...flags, dir]);
  const run = spawnSync(command!, args, { env: cliEnv(), encoding: 'utf8' });
  say({ [name]: run.status, report: JSON.parse(run.stdout.trim() || 'null') as unknown });
}
rmSync(topUp);
store = await Store.open(options);
say({ reopened: store.lastOffset, stateHash: store.stateHash(), objects: store.tableCounts().objects });
await fill('reopened', 1, 1_000_000);
rmSync(ballast);
await fill('freed', 1, putsAfterFree);
const taken = await store.snapshot();
say({ snapshotAfterFree: taken.offset, stateHash: taken.stateHash });
await fill('after-snapshot', 1, putsAfterSnapshot);
const finalHash = store.stateHash();
const lastOffset = store.lastOffset;
await store.close();
cpSync(dir, copyTo, { recursive: true });
say({ closed: lastOffset, stateHash: finalHash, failed: store.failed });
