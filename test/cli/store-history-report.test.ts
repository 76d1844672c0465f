/**
 * `store verify` and `store inspect` (text and --json) show the store's history id, the one its
 * history.json holds; a store from before history ids shows none yet under `--read-only` and
 * `inspect` (they write nothing, so no id is given), and `restore` reports the new history it
 * started with its parent.
 */
import { mkdtempSync, readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { historyFileName } from '../../storage/history.js';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

function historyIdIn(dir: string): string {
  return (JSON.parse(readFileSync(path.join(dir, historyFileName), 'utf8')) as { id: string }).id;
}

test('verify and inspect show the history id of history.json; a store older than history ids shows none until an open writes one', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'ioboxx-history-cli-')), 'store');
  await writeMemoryStore(dir, 5, 64 * 1024);
  const id = historyIdIn(dir);

  const verify = await cli(['store', 'verify', dir, '--json']);
  expect(verify.code, verify.stderr).toBe(0);
  expect(JSON.parse(verify.stdout).history).toMatchObject({ id, origin: 'created' });
  const inspect = await cli(['store', 'inspect', dir]);
  expect(inspect.code, inspect.stderr).toBe(0);
  expect(inspect.stdout).toContain(`history      ${id} (since the store was created)`);

  unlinkSync(path.join(dir, historyFileName)); // as a version before history ids left it
  const readOnly = await cli(['store', 'verify', dir, '--read-only', '--json']);
  expect(JSON.parse(readOnly.stdout).history).toBeNull();
  const inspectOld = await cli(['store', 'inspect', dir, '--json']);
  expect(JSON.parse(inspectOld.stdout).history).toBeNull();
  const adopted = await cli(['store', 'verify', dir]);
  expect(adopted.stdout).toContain(`history      ${historyIdIn(dir)} (given at offset`);
}, 240_000);
