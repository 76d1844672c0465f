/**
 * `store inspect` on a store another process has open: the writer's half-written tail and a
 * snapshot it is writing are reported as in progress, not as damage; the same bytes in a closed
 * store are problems.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { inspectStore } from '../../storage/inspect.js';
import { Store } from '../../storage/store.js';
import { processStartTime } from '../../storage/io/process-runs.js';
import { lockFileName } from '../../storage/store-lock.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { asAfterCrash } from '../support/crash-image.js';
import { childExit } from '../support/child-exit.js';

describe('store inspect of a live store', () => {
  test('a partial last frame and a manifest-less snapshot: in progress while the LOCK is held, problems once it is not', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ioboxx-inspect-live-'));
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 10; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
    await store.close();
    asAfterCrash(dir);
    const logDir = path.join(dir, 'log');
    const last = path.join(logDir, readdirSync(logDir).filter((f) => f.endsWith('.log')).sort().at(-1)!);
    appendFileSync(last, Buffer.from([0x40, 0, 0, 0, 1, 2, 3])); // a frame header cut short, as a writer mid-append leaves it
    mkdirSync(path.join(dir, 'snapshots', '00000000000000000009'), { recursive: true });
    writeFileSync(path.join(dir, 'snapshots', '00000000000000000009', 'state.msgpack'), Buffer.alloc(10));

    const writer = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      writeFileSync(path.join(dir, lockFileName), `${writer.pid} ${processStartTime(writer.pid!)}`);
      const live = await inspectStore(dir);
      expect(live.openByPid).toBe(writer.pid);
      expect(live.segments.filter((s) => s.problem)).toEqual([]);
      expect(live.segments.at(-1)!.inProgress).toContain(`the writer (pid ${writer.pid}) is appending`);
      expect(live.snapshots.filter((s) => s.problem)).toEqual([]);
      expect(live.snapshots[0]!.inProgress).toContain('being written');
    } finally {
      writer.kill('SIGKILL');
      await childExit(writer);
    }
    const closed = await inspectStore(dir); // its LOCK now names a process that ended
    expect(closed.openByPid).toBeNull();
    expect(closed.segments.at(-1)!.problem).toBeDefined();
    expect(closed.snapshots[0]!.problem).toBeDefined();
  });
});
