/**
 * A new version of a module that adds a table opens the stores the version before wrote: closed
 * cleanly (the checkpoint's hash), snapshotted, or with frames after the snapshot. A table added
 * after the module's first stores (not in StoreModule.tablesHashedWhenEmpty) is left out of the
 * state hash while it is empty, so the hash of an existing store does not change; once it holds
 * rows it counts. Without that, every store closed by the version before refused to open after
 * the upgrade (damaged_store: the state hash after recovery differs from the checkpoint's).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { defineReducer, type StoreModule } from '../../storage/reducer.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const before: StoreModule = { ...counterModule, tablesHashedWhenEmpty: counterModule.tables.map((t) => t.name) };
const after: StoreModule = {
  ...before,
  tables: [...before.tables, { name: 'aa_added', columns: [{ name: 'id', type: 'string' }], primaryKey: ['id'], indexes: [] }],
  reducers: [...before.reducers, defineReducer({
    name: 'add',
    args: z.object({ id: z.string() }),
    run(ctx, args) {
      ctx.table('aa_added').insert(args);
      return {};
    },
  })],
};

async function writtenBefore(snapshot: 'none' | 'at close' | 'then frames'): Promise<{ dir: string; hash: string; offset: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-upgrade-'));
  const store = await Store.open({ dir, module: before });
  for (let i = 0; i < 20; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: {} }, testCaller);
  if (snapshot !== 'none') await store.snapshot();
  if (snapshot === 'then frames') for (let i = 0; i < 5; i++) await store.call('bump', { id: `o${i}`, by: 1 }, testCaller);
  const hash = store.stateHash();
  const offset = store.lastOffset;
  await store.close();
  return { dir, hash, offset };
}

describe('a module that adds a table opens the stores of the version before', () => {
  test.each(['none', 'at close', 'then frames'] as const)('snapshot: %s; the hash is unchanged until the new table holds a row', async (snapshot) => {
    const old = await writtenBefore(snapshot);
    const upgraded = await Store.open({ dir: old.dir, module: after });
    expect(upgraded.lastOffset).toBe(old.offset);
    expect(upgraded.stateHash()).toBe(old.hash);
    await upgraded.call('add', { id: 'x' }, testCaller);
    const hashWithRow = upgraded.stateHash();
    expect(hashWithRow).not.toBe(old.hash);
    await upgraded.snapshot();
    await upgraded.close();
    const again = await Store.open({ dir: old.dir, module: after });
    expect(again.stateHash()).toBe(hashWithRow);
    expect(again.tableCounts()['aa_added']).toBe(1);
    await again.close();
  });

  test('a module that lists no tables hashes every table, empty or not (as before the list)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-upgrade-'));
    const plain = await Store.open({ dir, module: { ...after, tablesHashedWhenEmpty: undefined } });
    const listed = await Store.open({ dir: mkdtempSync(path.join(tmpdir(), 'ioboxx-upgrade-')), module: after });
    expect(plain.stateHash()).not.toBe(listed.stateHash()); // the empty aa_added counts in one only
    await plain.close();
    await listed.close();
  });
});

test('the memory module\'s tables hashed when empty are those of its first stores, and tables of it', () => {
  // Frozen: stores written since 2026-12-01 hash these tables even when empty. A table added to
  // the module later must NOT be added here (that would change every existing store's hash).
  const firstStores = [
    'objects', 'relations', 'object_types', 'object_versions', 'chat_threads', 'chat_messages', 'embeddings', 'embedding_models',
    'bpmn_instances', 'bpmn_tokens', 'bpmn_tasks', 'agent_sessions', 'run_outbox', 'ar_surfaces', 'ar_observations', 'access_log',
    'kc_users', 'kc_memberships', 'kc_role_grants', 'kc_landings',
  ];
  expect(memoryModule.tablesHashedWhenEmpty).toEqual(firstStores);
  const tables = new Set(memoryModule.tables.map((t) => t.name));
  for (const name of firstStores) expect(tables.has(name), name).toBe(true);
});

describe('a release that adds a unique index over rows that break it', () => {
  const withUniqueN: StoreModule = {
    ...before,
    tables: before.tables.map((t) => (t.name === 'objects' ? { ...t, indexes: [...(t.indexes ?? []), { name: 'by_n', columns: ['n'], unique: true }] } : t)),
  };

  test.each(['none', 'at close'] as const)('snapshot: %s; the open is refused naming the index, whether the rows come from the log or a snapshot', async (snapshot) => {
    const old = await writtenBefore('none');
    const store = await Store.open({ dir: old.dir, module: before });
    await store.call('put', { id: 'dup', type: 't', n: 7, attributes: {} }, testCaller); // o7 holds n 7 too
    if (snapshot !== 'none') await store.snapshot();
    await store.close();
    await expect(Store.open({ dir: old.dir, module: withUniqueN })).rejects.toThrow(/unique index by_n holds one value twice/);
    // Nothing was changed by the refusal: the release before still opens the store, whole.
    const again = await Store.open({ dir: old.dir, module: before });
    expect(again.tableCounts()['objects']).toBe(21);
    await again.close();
  });

  test('rows that meet it open, and the index answers', async () => {
    const old = await writtenBefore('none');
    const upgraded = await Store.open({ dir: old.dir, module: withUniqueN });
    expect(upgraded.stateHash()).toBe(old.hash);
    expect(await upgraded.read((view) => view.table('objects').getBy('by_n', [7])?.['id'])).toBe('o7');
    await upgraded.close();
  });
});
