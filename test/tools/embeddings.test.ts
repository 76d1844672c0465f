import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { embeddingModelsMax } from '../../tools/embeddings.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

/** A deterministic pseudo-random vector (mulberry32), so the test data is the same on every run. */
function vectorFrom(seed: number, dims: number): number[] {
  let state = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < dims; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out.push(((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5);
  }
  return out;
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.fround(a[i]!);
    const y = Math.fround(b[i]!);
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / Math.sqrt(na * nb);
}

async function seed(count: number, dims: number): Promise<Map<string, number[]>> {
  const vectors = new Map<string, number[]>();
  for (let i = 0; i < count; i++) {
    const id = `doc${String(i).padStart(3, '0')}`;
    await f.call('object_put', { id, type: i % 2 === 0 ? 'even' : 'odd', attributes: { n: i } });
    const v = vectorFrom(i + 1, dims);
    await f.call('embedding_put', { object_id: id, model: 'mini', vector: v });
    vectors.set(id, v);
  }
  return vectors;
}

describe('embedding_search', () => {
  test('returns the k most cosine-similar objects, best first, agreeing with exact search', async () => {
    const vectors = await seed(60, 32);
    const query = vectorFrom(999, 32);
    const exact = [...vectors].map(([id, v]) => ({ id, score: cosine(query, v) })).sort((a, b) => b.score - a.score).slice(0, 10);
    const found = await f.call('embedding_search', { vector: query, k: 10 });
    expect(found.results.map((r: { id: string }) => r.id)).toEqual(exact.map((r) => r.id));
    for (const [i, r] of found.results.entries()) expect(r.score).toBeCloseTo(exact[i]!.score, 5);
    // The object's own vector finds itself first.
    const self = await f.call('embedding_search', { vector: vectors.get('doc007'), k: 1 });
    expect(self.results).toEqual([{ id: 'doc007', score: expect.closeTo(1, 5), type: 'odd' }]);
  });

  test('type and attribute filters apply inside the search (k results whenever k match)', async () => {
    const vectors = await seed(40, 16);
    const query = vectorFrom(77, 16);
    const evenBig = [...vectors].filter(([id]) => Number(id.slice(3)) % 2 === 0 && Number(id.slice(3)) >= 20)
      .map(([id, v]) => ({ id, score: cosine(query, v) })).sort((a, b) => b.score - a.score).slice(0, 5);
    const found = await f.call('embedding_search', { vector: query, k: 5, type: 'even', where: [{ path: 'n', op: 'gte', value: 20 }] });
    expect(found.results.map((r: { id: string }) => r.id)).toEqual(evenBig.map((r) => r.id));
    expect(found.results.every((r: { type: string }) => r.type === 'even')).toBe(true);
    const none = await f.call('embedding_search', { vector: query, k: 5, where: [{ path: 'n', op: 'gt', value: 1000 }] });
    expect(none.results).toEqual([]);
  });

  test('dimensions are fixed per model by its first vector; a mismatch is invalid_argument and writes nothing', async () => {
    await f.call('object_put', { id: 'a', type: 't', attributes: {} });
    await f.call('object_put', { id: 'b', type: 't', attributes: {} });
    expect(await f.call('embedding_put', { object_id: 'a', model: 'mini', vector: [1, 2, 3] })).toMatchObject({ dims: 3 });
    await expectRefused(f, f.call('embedding_put', { object_id: 'b', model: 'mini', vector: [1, 2] }), 'invalid_argument', /3 dimensions/);
    await expectRefused(f, f.call('embedding_search', { vector: [1, 2], model: 'mini' }), 'invalid_argument', /3 dimensions/);
    await expectRefused(f, f.call('embedding_search', { vector: [1, 2, 3, 4] }), 'invalid_argument', /no model has 4/);
    // Another model may have other dimensions; each query searches its own length.
    await f.call('embedding_put', { object_id: 'b', model: 'wide', vector: [0, 1, 0, 0, 0] });
    expect((await f.call('embedding_search', { vector: [0, 1, 0, 0, 0] })).results.map((r: { id: string }) => r.id)).toEqual(['b']);
    expect((await f.call('embedding_search', { vector: [1, 2, 3], model: 'mini' })).results.map((r: { id: string }) => r.id)).toEqual(['a']);
  });

  test('a model goes with its last embedding: its name then takes new dimensions, and frees its place under embeddingModelsMax', async () => {
    const models = async () => (await f.memory.store.read((view) => [...view.table('embedding_models').scan()].map((m) => `${String(m['model'])}:${String(m['dims'])}`)));
    for (const id of ['a', 'b', 'c']) await f.call('object_put', { id, type: 't', attributes: {} });
    // A test vector of the wrong length fixed the model at 2 dimensions.
    await f.call('embedding_put', { object_id: 'a', model: 'text-3', vector: [1, 2] });
    await f.call('embedding_put', { object_id: 'b', model: 'text-3', vector: [2, 1] });
    await expectRefused(f, f.call('embedding_put', { object_id: 'c', model: 'text-3', vector: [1, 2, 3] }), 'invalid_argument', /2 dimensions/);
    // Deleting one embedding keeps the model; its last (here by deleting its object) drops it.
    await f.call('embedding_delete', { object_id: 'a' });
    expect(await models()).toEqual(['text-3:2']);
    await f.call('object_delete', { id: 'b' });
    expect(await models()).toEqual([]);
    expect(await f.call('embedding_put', { object_id: 'c', model: 'text-3', vector: [1, 2, 3] })).toMatchObject({ dims: 3 });
    // Moving an object's embedding to another model drops the one it leaves empty.
    await f.call('embedding_put', { object_id: 'c', model: 'text-4', vector: [1, 2, 3, 4] });
    expect(await models()).toEqual(['text-4:4']);
  });

  test(`past embeddingModelsMax (${embeddingModelsMax}) a new model is refused naming the limit and how to free a place`, async () => {
    await f.call('object_put', { id: 'a', type: 't', attributes: {} });
    await Promise.all(Array.from({ length: embeddingModelsMax }, async (_, i) => {
      await f.call('object_put', { id: `m${i}`, type: 't', attributes: {} });
      await f.call('embedding_put', { object_id: `m${i}`, model: `model-${i}`, vector: [1, i] });
    }));
    const refused = await expectRefused(f, f.call('embedding_put', { object_id: 'a', model: 'one-more', vector: [1, 2] }), 'limit_exceeded', /embeddingModelsMax\) is 64/);
    expect(refused.hint).toMatch(/delete the embeddings of a model/);
    // A model in use still takes vectors.
    await f.call('embedding_put', { object_id: 'a', model: 'model-3', vector: [2, 1] });
  });

  test('bad vectors and bounds are refused', async () => {
    await f.call('object_put', { id: 'a', type: 't', attributes: {} });
    await expectRefused(f, f.call('embedding_put', { object_id: 'a', model: 'm', vector: [0, 0, 0] }), 'invalid_argument', /zeros/);
    await expectRefused(f, f.call('embedding_put', { object_id: 'a', model: 'm', vector: [] }), 'invalid_argument');
    await expectRefused(f, f.call('embedding_put', { object_id: 'a', model: 'm', vector: [1, 'x'] }), 'invalid_argument');
    await expectRefused(f, f.call('embedding_put', { object_id: 'a', model: 'm', vector: [1e39, 1] }), 'invalid_argument', /finite/);
    await expectRefused(f, f.call('embedding_put', { object_id: 'a', model: 'm', vector: new Array(4097).fill(1) }), 'invalid_argument');
    await expectRefused(f, f.call('embedding_put', { object_id: 'ghost', model: 'm', vector: [1] }), 'not_found');
    await expectRefused(f, f.call('embedding_search', { vector: [1, 1], k: 101 }), 'invalid_argument');
    await expectRefused(f, f.call('embedding_search', { vector: [0, 0] }), 'invalid_argument');
    await expectRefused(f, f.call('embedding_delete', { object_id: 'a' }), 'not_found');
  });

  test('the index survives a restart and never disagrees with the table', async () => {
    const vectors = await seed(20, 8);
    await f.call('embedding_delete', { object_id: 'doc003' });
    await f.call('object_delete', { id: 'doc004' });
    await f.call('embedding_put', { object_id: 'doc005', model: 'mini', vector: vectors.get('doc006') });
    const query = vectorFrom(5, 8);
    const before = await f.call('embedding_search', { vector: query, k: 20 });
    await f.reopen();
    expect(f.memory.vectors.size).toBe(18);
    const after = await f.call('embedding_search', { vector: query, k: 20 });
    expect(after).toEqual(before);
    const ids = after.results.map((r: { id: string }) => r.id);
    expect(ids).not.toContain('doc003');
    expect(ids).not.toContain('doc004');
    const table = await f.memory.store.read((v) => [...v.table('embeddings').scan()].map((r) => r['object_id']));
    expect([...ids].sort()).toEqual([...table].sort());
  });
});
