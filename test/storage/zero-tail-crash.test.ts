/**
 * SIGKILL with a zero tail: a real child commits under 32 concurrent callers (test/crash/commit-child.ts)
 * and is killed at a random moment, so its active segment ends in the zeros written ahead of the
 * frames. Reopening must read that as a clean end (nothing torn, nothing kept aside) and hold every
 * acknowledged transaction.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { inspectStore } from '../../storage/inspect.js';
import { Store } from '../../storage/store.js';
import { counterModule } from '../support/counter-module.js';
import { runAndKill } from '../crash/run-and-kill.js';

const rounds = 5;

describe('crash with a zero tail', () => {
  test(`after SIGKILL the zeros after the last frame are a clean end and every acknowledged call is there (${rounds} rounds)`, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ioboxx-zerotail-crash-'));
    let cleanEnds = 0;
    for (let round = 0; round < rounds; round++) {
      const acks = await runAndKill(dir, 50 + Math.floor(Math.random() * 800));
      const last = (await inspectStore(dir)).segments.at(-1)!;
      // Killed between writes (nearly always): zeros follow the frames. Killed inside a write: a torn frame.
      const zeroEnded = (last.zeroTailBytes ?? 0) > 0;
      if (zeroEnded) cleanEnds++;
      else expect(last.problem, `round ${round}: neither a zero tail nor a torn frame`).toBeDefined();
      // An earlier round killed inside a write left its cut bytes aside: only new ones count.
      const tornBefore = tornFiles(dir);
      const store = await Store.open({ dir, module: counterModule });
      try {
        if (zeroEnded) {
          expect(store.report.torn, `round ${round}: a zero tail was read as torn`).toBeUndefined();
          expect(tornFiles(dir), `round ${round}: bytes kept aside for a zero tail`).toEqual(tornBefore);
        } else {
          expect(store.report.torn).toBeDefined();
          expect(tornFiles(dir).length, `round ${round}: the torn frame's bytes were not kept aside`).toBeGreaterThan(tornBefore.length);
        }
        const maxAcked = Math.max(-1, ...acks.keys());
        expect(store.lastOffset, `round ${round}: acknowledged offset ${maxAcked} lost`).toBeGreaterThanOrEqual(maxAcked);
        for (const [offset, by] of acks) {
          const tx = await store.readTx(offset);
          expect((tx?.invocation.args as { by?: number } | undefined)?.by, `round ${round}: offset ${offset}`).toBe(by);
        }
      } finally {
        await store.close();
      }
    }
    expect(cleanEnds).toBeGreaterThan(0);
  }, 120_000);
});

/** The files holding bytes cut from torn tails (storage/log/recovery.ts keeps them aside), sorted. */
function tornFiles(dir: string): string[] {
  return readdirSync(path.join(dir, 'log')).filter((f) => f.startsWith('torn-')).sort();
}
