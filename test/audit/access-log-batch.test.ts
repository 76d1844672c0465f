import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { Store } from '../../storage/store.js';
import { accessLogAppendEntriesMax, accessLogAppendKeeping, accessLogTable } from '../../tools/access-log.js';

const server = { tenant: 'acme', subject: 'system:access-log', roles: ['system'] };
const rowsMax = 10;
let dir: string;
let store: Store;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-access-log-batch-'));
  store = await Store.open({ dir, module: { tables: [accessLogTable], reducers: [accessLogAppendKeeping(rowsMax)] } });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const entry = (i: number) => ({ subject: 's', action: 'tools/call', target: `t${i}`, outcome: 'ok', at_ms: 1_000 + i });
const seqs = () => store.read((v) => [...v.table('access_log').scan()].map((r) => r['seq']));

test('a batch appends its entries in order with consecutive seqs and their own at_ms', async () => {
  await store.call('access_log_append', entry(0), server);
  const result = await store.call<{ seq: number; first_seq: number }>('access_log_append', { entries: [entry(1), entry(2), entry(3)] }, server);
  expect(result.result).toEqual({ seq: 4, first_seq: 2 });
  const rows = await store.read((v) => [...v.table('access_log').scan()]);
  expect(rows.map((r) => [r['seq'], r['target'], r['at_ms']])).toEqual([[1, 't0', 1_000], [2, 't1', 1_001], [3, 't2', 1_002], [4, 't3', 1_003]]);
});

test('a batch with one malformed entry is refused whole and writes nothing', async () => {
  const before = store.lastOffset;
  await expect(store.call('access_log_append', { entries: [entry(1), { ...entry(2), subject: '' }] }, server)).rejects.toSatisfy(
    (error: unknown) => error instanceof MemoryError && error.code === 'invalid_argument',
  );
  await expect(store.call('access_log_append', { entries: [] }, server)).rejects.toBeInstanceOf(MemoryError);
  const tooMany = Array.from({ length: accessLogAppendEntriesMax + 1 }, (_, i) => entry(i));
  await expect(store.call('access_log_append', { entries: tooMany }, server)).rejects.toBeInstanceOf(MemoryError);
  expect(store.lastOffset).toBe(before);
  expect(await seqs()).toEqual([]);
});

test('a batch that overflows the bound evicts exactly the oldest rows, in its own transaction', async () => {
  await store.call('access_log_append', { entries: Array.from({ length: 8 }, (_, i) => entry(i)) }, server);
  const evicted: number[] = [];
  store.onCommit((txs) => {
    for (const tx of txs) evicted.push(...tx.changes.flatMap((c) => c.deletes.map((r) => r['seq'] as number)));
  });
  await store.call('access_log_append', { entries: Array.from({ length: 7 }, (_, i) => entry(8 + i)) }, server);
  expect(evicted).toEqual([1, 2, 3, 4, 5]);
  expect(await seqs()).toEqual(Array.from({ length: rowsMax }, (_, i) => i + 6));
});
