/**
 * The text `store verify` and `store inspect` print for a store no snapshot covers: the snapshot
 * the open loaded is `none` (the whole log replayed), not the engine's -1; once one is taken, its offset.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-store-text-'));
const dir = path.join(work, 'store');
beforeAll(() => writeMemoryStore(dir, 50, 64 * 1024));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('no snapshot: verify and inspect say none; after store snapshot, its offset', async () => {
  const verified = await cli(['store', 'verify', dir]);
  expect(verified.code, verified.stderr).toBe(0);
  expect(verified.stdout).toContain('snapshot     none (+50 frames replayed)');
  const inspected = await cli(['store', 'inspect', dir]);
  expect(inspected.code, inspected.stderr).toBe(0);
  expect(inspected.stdout).toContain('open: ok (read-only): snapshot none, last offset 49');

  expect((await cli(['store', 'snapshot', dir])).code).toBe(0);
  expect((await cli(['store', 'verify', dir])).stdout).toContain('snapshot     49 (+0 frames replayed)');
});
