import { afterEach, beforeEach, expect, test } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Store } from '../../storage/store.js';
import { openTenantMemory } from '../../tools/index.js';
import { accessLogAppendKeeping, accessLogRowsMax, accessLogTable } from '../../tools/access-log.js';
import { alice, expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

const server = { tenant: 'acme', subject: 'server' };

function append(entry: Record<string, unknown>) {
  return f.memory.store.call<{ seq: number }>('access_log_append', entry, server);
}

test('the server appends one row per call; access_log_list shows them newest first, filtered and paged', async () => {
  const put = await f.call('object_put', { id: 'o1', type: 't', attributes: {} });
  await append({ subject: 'alice', action: 'tools/call', target: 'object_put', object_ids: ['o1'], offset: put.offset, outcome: 'ok' });
  await append({ subject: 'bob', action: 'resources/read', target: 'memory://objects/o1', object_ids: ['o1'], outcome: 'ok' });
  await append({ subject: 'bob', action: 'tools/call', target: 'object_delete', outcome: 'forbidden' });
  const all = await f.call('access_log_list', {}, alice);
  expect(all.entries.map((e: { seq: number; subject: string; outcome: string }) => [e.seq, e.subject, e.outcome])).toEqual([
    [3, 'bob', 'forbidden'], [2, 'bob', 'ok'], [1, 'alice', 'ok'],
  ]);
  expect(all.entries[2]).toMatchObject({ action: 'tools/call', target: 'object_put', object_ids: ['o1'], offset: put.offset, at_ms: expect.any(Number) });
  expect(all.entries[1].offset).toBeNull();
  const bobs = await f.call('access_log_list', { subject: 'bob', limit: 1 });
  expect(bobs.entries.map((e: { seq: number }) => e.seq)).toEqual([3]);
  const next = await f.call('access_log_list', { subject: 'bob', limit: 1, cursor: bobs.next_cursor });
  expect(next.entries.map((e: { seq: number }) => e.seq)).toEqual([2]);
  await expectRefused(f, f.call('access_log_list', { subject: 'alice', cursor: bobs.next_cursor }), 'invalid_argument');
});

test('a malformed entry is refused and writes nothing', async () => {
  await expectRefused(f, append({ subject: '', action: 'tools/call', target: 'x', outcome: 'ok' }), 'invalid_argument');
  await expectRefused(f, append({ subject: 'a', action: 'tools/call', target: 'x', outcome: 'ok', object_ids: Array(101).fill('o') }), 'invalid_argument');
  await expectRefused(f, append({ subject: 'a', action: 'tools/call', target: 'x', outcome: 'ok', offset: -1 }), 'invalid_argument');
});

test('the log keeps the newest rowsMax rows, evicting the oldest in the appending transaction', async () => {
  const rowsMax = 10;
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-access-log-'));
  const store = await Store.open({ dir, module: { tables: [accessLogTable], reducers: [accessLogAppendKeeping(rowsMax)] } });
  try {
    const evictions: number[] = [];
    store.onCommit((txs) => {
      for (const tx of txs) evictions.push(...tx.changes.flatMap((c) => c.deletes.map((r) => r['seq'] as number)));
    });
    for (let i = 0; i < rowsMax + 5; i++) await store.call('access_log_append', { subject: 's', action: 'tools/call', target: 't', outcome: 'ok' }, server);
    const seqs = await store.read((v) => [...v.table('access_log').scan()].map((r) => r['seq']));
    expect(seqs).toEqual(Array.from({ length: rowsMax }, (_, i) => i + 6));
    expect(evictions).toEqual([1, 2, 3, 4, 5]);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the production bound is a named limit', () => {
  expect(accessLogRowsMax).toBe(100_000);
});

test('a tenant over its row bytes limit still gets its access-log rows (every request leaves one); its own growth is refused', async () => {
  await f.call('object_put', { id: 'big', type: 't', attributes: { text: 'x'.repeat(9000) } });
  await f.memory.close();
  f.memory = await openTenantMemory(f.dir, 'acme', { liveRowBytesMax: 8192 }); // the limit lowered below what it holds
  await expectRefused(f, f.call('object_put', { id: 'more', type: 't', attributes: {} }), 'limit_exceeded');
  const row = await append({ subject: 'alice', action: 'tools/call', target: 'object_put', outcome: 'limit_exceeded' });
  expect(row.result.seq).toBe(1);
  expect((await f.call('access_log_list', {}, alice)).entries).toHaveLength(1);
});
