/**
 * The vector index as the engine keeps it: a DerivedIndex of a real Store in a temporary
 * directory, through commits, updates, deletes, a reducer that throws, and reopening (by
 * replay and from a snapshot).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { z } from 'zod';
import type { Caller } from '../../storage/changes.js';
import { defineReducer, type StoreModule } from '../../storage/reducer.js';
import { Store } from '../../storage/store.js';
import { VectorIndex } from '../../tools/vector-index.js';
import { exactTopK, randomVectors } from './vector-data.js';

const dims = 24;
const module: StoreModule = {
  tables: [{
    name: 'embeddings',
    columns: [{ name: 'id', type: 'string' }, { name: 'kind', type: 'string' }, { name: 'vector', type: 'vector' }],
    primaryKey: ['id'],
  }],
  reducers: [
    defineReducer({
      name: 'put',
      args: z.object({ id: z.string(), kind: z.string(), vector: z.array(z.number()).length(dims), fail: z.boolean().optional() }),
      run(ctx, args) {
        ctx.table('embeddings').upsert({ id: args.id, kind: args.kind, vector: args.vector });
        if (args.fail) throw new Error('reducer failed after writing');
      },
    }),
    defineReducer({
      name: 'remove',
      args: z.object({ id: z.string() }),
      run(ctx, args) {
        ctx.table('embeddings').delete([args.id]);
      },
    }),
  ],
};
const caller: Caller = { tenant: 't', subject: 'test' };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'vector-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function open(): Promise<{ store: Store; index: VectorIndex }> {
  const index = new VectorIndex({ table: 'embeddings', idColumn: 'id', vectorColumn: 'vector' });
  const store = await Store.open({ dir, module, derived: [index] });
  return { store, index };
}

const vectors = randomVectors(300, dims, 30);
const put = (store: Store, i: number, vector = vectors[i]!, extra: { fail?: boolean } = {}) =>
  store.call('put', { id: `e${i}`, kind: i % 3 === 0 ? 'a' : 'b', vector: Array.from(vector), ...extra }, caller);

/** What the table holds, as index ids ranked by exact search. */
async function tableRanking(store: Store, query: Float32Array): Promise<string[]> {
  const rows = await store.read((view) => [...view.table('embeddings').scan()]);
  const held = rows.map((r) => r.vector as Float32Array);
  return exactTopK(held, query, held.length).map((h) => rows[h.index]!.id as string);
}

test('the index follows commits, updates and deletes, and agrees with the table after reopening', async () => {
  let { store, index } = await open();
  await Promise.all(vectors.map((_, i) => put(store, i)));
  await Promise.all([10, 20, 30].map((i) => store.call('remove', { id: `e${i}` }, caller)));
  await put(store, 40, vectors[299]); // an update: e40 now has e299's vector
  const query = vectors[299]!;
  const before = index.search(query, 1000).map((h) => h.id);
  expect(before).toEqual(await tableRanking(store, query));
  expect(before).not.toContain('e10');
  expect(index.size).toBe(297);

  await store.close();
  ({ store, index } = await open()); // by replay
  expect(index.search(query, 1000).map((h) => h.id)).toEqual(before);

  await store.snapshot();
  await store.close();
  ({ store, index } = await open()); // from the snapshot
  expect(store.report.replayedFrames).toBe(0);
  expect(index.size).toBe(297);
  expect(index.search(query, 1000).map((h) => h.id)).toEqual(before);
  await store.close();
});

test('a reducer that throws after writing a vector leaves no trace in the index', async () => {
  const { store, index } = await open();
  await put(store, 1);
  await expect(put(store, 2, vectors[2], { fail: true })).rejects.toThrow('reducer failed');
  await expect(put(store, 1, vectors[3], { fail: true })).rejects.toThrow('reducer failed');
  expect(index.size).toBe(1);
  expect(index.has('e2')).toBe(false);
  expect(index.search(vectors[1]!, 1)[0]!.score).toBeCloseTo(1, 6);
  await store.close();
});

test('a filtered search over the store returns only matching rows, k of them', async () => {
  const { store, index } = await open();
  await Promise.all(vectors.map((_, i) => put(store, i)));
  const kinds = new Map((await store.read((v) => [...v.table('embeddings').scan()])).map((r) => [r.id as string, r.kind]));
  const hits = index.search(vectors[5]!, 10, (id) => kinds.get(id) === 'a');
  expect(hits).toHaveLength(10);
  for (const hit of hits) expect(kinds.get(hit.id)).toBe('a');
  await store.close();
});
