/**
 * `store verify` and `store inspect` (text and --json) show the store's history id, the one its
 * history.json holds; a store from before history ids shows none yet under `--read-only` and
 * `inspect` (they write nothing, so no id is given). A store that lost its history.json shows the
 * id its checkpoint or snapshot records and names that file (`historyRecoveredFrom`); `store
 * verify` puts the file back. Before, the lost file's store showed none, and verify gave it a new id.
 */
import { mkdtempSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { historyFileName } from '../../storage/history.js';
import { checkpointFileName } from '../../storage/log/checkpoint.js';
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

  // As a version before history ids left it: no history.json, and a checkpoint that records none.
  unlinkSync(path.join(dir, historyFileName));
  const checkpointFile = path.join(dir, 'log', checkpointFileName);
  const { history: _history, ...checkpoint } = JSON.parse(readFileSync(checkpointFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(checkpointFile, JSON.stringify(checkpoint));
  const readOnly = await cli(['store', 'verify', dir, '--read-only', '--json']);
  expect(JSON.parse(readOnly.stdout).history).toBeNull();
  const inspectOld = await cli(['store', 'inspect', dir, '--json']);
  expect(JSON.parse(inspectOld.stdout).history).toBeNull();
  const adopted = await cli(['store', 'verify', dir]);
  expect(adopted.stdout).toContain(`history      ${historyIdIn(dir)} (given at offset`);
}, 240_000);

test('a store that lost history.json: inspect and verify --read-only show the id its checkpoint records and name the file; verify puts history.json back', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'ioboxx-history-cli-')), 'store');
  await writeMemoryStore(dir, 5, 64 * 1024);
  const file = path.join(dir, historyFileName);
  const original = readFileSync(file, 'utf8');
  const id = historyIdIn(dir);
  const checkpoint = path.join(dir, 'log', checkpointFileName);
  unlinkSync(file); // lost: deleted by hand, left out of a copy

  for (const args of [['store', 'inspect', dir, '--json'], ['store', 'verify', dir, '--read-only', '--json']]) {
    const r = await cli(args);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ history: { id, origin: 'created' }, historyRecoveredFrom: checkpoint });
  }
  const inspect = await cli(['store', 'inspect', dir]);
  expect(inspect.stdout).toContain(`history      ${id} (since the store was created)`);
  expect(inspect.stdout).toContain(`RECOVERED: ${historyFileName} is missing; the id is the one ${checkpoint} records`);

  const verify = await cli(['store', 'verify', dir]);
  expect(verify.code, verify.stderr).toBe(0);
  expect(verify.stdout).toContain(`history      ${id} (since the store was created)`);
  expect(verify.stdout).toContain(`RECOVERED: ${historyFileName} was missing; put back from ${checkpoint}`);
  expect(readFileSync(file, 'utf8')).toBe(original);
  const again = await cli(['store', 'verify', dir, '--json']);
  expect(JSON.parse(again.stdout)).toMatchObject({ history: { id }, historyRecoveredFrom: null });
}, 240_000);
