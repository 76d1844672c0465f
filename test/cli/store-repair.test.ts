/**
 * `store repair DIR` through the real CLI: its text report says where the damage was, what was
 * dropped (offsets only when something was) and what moved aside; afterwards the store verifies.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { segmentFileName } from '../../storage/log/segment.js';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-store-repair-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const segmentsOf = (dir: string) => readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort();

async function verified(dir: string): Promise<{ lastOffset: number; stateHash: string }> {
  const r = await cli(['store', 'verify', dir, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { lastOffset: number; stateHash: string };
}

describe.concurrent('store repair', () => {
  test('a FIFO named like the next segment: moved aside whole, "dropped no transaction", the store verifies with its state', async () => {
    const dir = path.join(work, 'fifo');
    await writeMemoryStore(dir, 50, 64 * 1024);
    const before = await verified(dir);
    const fifo = path.join(dir, 'log', segmentFileName(before.lastOffset + 1));
    execFileSync('mkfifo', [fifo]);
    const r = await cli(['store', 'repair', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`damage in ${fifo} at byte 0: a FIFO stands where this segment file should be\ndropped no transaction\nmoved aside: ${fifo} from byte 0\n`);
    // Where it went is said, so the operator finds it without searching the store.
    const keptIn = /kept in (\S+) \(nothing deleted\)/.exec(r.stdout)?.[1];
    expect(keptIn, r.stdout).toMatch(new RegExp(`^${path.join(dir, 'log', 'repair-')}\\d+$`));
    expect(readdirSync(keptIn!)).toContain(`${path.basename(fifo)}.from-0`);
    expect(await verified(dir)).toEqual(before);
  });

  test('a flipped byte in a sealed segment: the report names the offsets dropped', async () => {
    const dir = path.join(work, 'flipped');
    await writeMemoryStore(dir, 400, 16 * 1024);
    const before = await verified(dir);
    const segments = segmentsOf(dir);
    expect(segments.length).toBeGreaterThan(3);
    const victim = path.join(dir, 'log', segments[1]!);
    const bytes = readFileSync(victim);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    writeFileSync(victim, bytes);
    const r = await cli(['store', 'repair', dir]);
    expect(r.code, r.stderr).toBe(0);
    const dropped = /dropped (\d+) transactions \(offsets (\d+)\.\.(\d+)\)/.exec(r.stdout);
    expect(dropped, r.stdout).not.toBeNull();
    const [, count, from, through] = dropped!.map(Number);
    expect(through).toBe(before.lastOffset);
    expect(count).toBe(through! - from! + 1);
    expect((await verified(dir)).lastOffset).toBe(from! - 1);
  });
});
