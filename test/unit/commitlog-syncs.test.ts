/**
 * The commitlog's fdatasyncs in flight: each on a file description of its own, at most two
 * (storage/log/commitlog.ts, ActiveSegment). That each hears a lost writeback: test/unit/group-commit.test.ts.
 */
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { Commitlog } from '../../storage/log/commitlog.js';
import { encodeFrame } from '../../storage/log/frame.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';

describe('commitlog fdatasyncs in flight', () => {
  test('two run at once; a third is refused as an error and never reaches the disk; both slots are free once they settle', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ioboxx-commitlog-syncs-'));
    const fl = new FaultyFileLayer();
    const log = await Commitlog.open(dir, fl, { segments: [], lastOffset: -1 }, 0);
    const synced: string[] = [];
    fl.observe = (file, op) => {
      if (op === 'datasync') synced.push(file);
    };
    let release = (): void => undefined;
    fl.datasyncGate = new Promise((resolve) => (release = resolve));
    const first = log.write([encodeFrame(0, Buffer.from('a'))], 1);
    const firstSync = log.sync();
    const second = log.write([encodeFrame(1, Buffer.from('b'))], 1);
    const secondSync = log.sync();
    const third = await log.sync();
    expect(String(third.datasyncError)).toMatch(/a third fdatasync while two are running/);
    expect(synced).toHaveLength(2); // the third never reached the disk
    release();
    fl.datasyncGate = undefined;
    const outcomes = await Promise.all([firstSync, secondSync]);
    expect(outcomes.map((o) => o.datasyncError)).toEqual([undefined, undefined]);
    log.commit(first);
    log.commit(second);
    // Both slots are free again.
    const last = log.write([encodeFrame(2, Buffer.from('c'))], 1);
    expect((await log.sync()).datasyncError).toBeUndefined();
    log.commit(last);
    expect(log.nextOffset).toBe(3);
    await log.close();
  });
});
