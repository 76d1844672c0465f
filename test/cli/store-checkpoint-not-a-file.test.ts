/**
 * A directory where log/checkpoint.json should be: the open refuses it as damage naming the file
 * (exit 3, with the repair command), not with a raw EISDIR from removing it (exit 1); `store
 * repair` moves it aside, drops nothing, and the store then verifies.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-checkpoint-not-a-file-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('a directory in place of checkpoint.json: refused as damage (exit 3), repaired by moving it aside', async () => {
  const dir = path.join(work, 'store');
  await writeMemoryStore(dir, 200, 64 * 1024);
  const checkpoint = path.join(dir, 'log', 'checkpoint.json');
  rmSync(checkpoint);
  mkdirSync(checkpoint);
  for (const args of [['verify', dir, '--read-only'], ['verify', dir], ['snapshot', dir]]) {
    const r = await cli(['store', ...args]);
    expect(r.stderr, args.join(' ')).toContain(`${checkpoint} at byte 0: checkpoint.json is a directory, not a regular file`);
    expect(r.stderr, args.join(' ')).toContain('store repair');
    expect(r.code, args.join(' ')).toBe(3);
  }
  const repaired = await cli(['store', 'repair', dir, '--json']);
  expect(repaired.code).toBe(0);
  const report = JSON.parse(repaired.stdout) as { damaged: boolean; droppedTransactions: number; movedAside: string[]; asideDir: string };
  expect(report).toMatchObject({ damaged: true, droppedTransactions: 0, movedAside: [checkpoint] });
  expect(statSync(path.join(report.asideDir, 'checkpoint.json')).isDirectory()).toBe(true);
  const verify = await cli(['store', 'verify', dir, '--json']);
  expect(verify.code).toBe(0);
  expect(JSON.parse(verify.stdout)).toMatchObject({ lastOffset: 199 });
  expect(readdirSync(path.join(dir, 'log')).filter((n) => n.endsWith('.log')).length).toBeGreaterThan(0);
});
