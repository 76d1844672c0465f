import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { VectorIndex, rerankDepth, searchKMax } from '../../tools/vector-index.js';
import { exactTopK, randomVectors } from './vector-data.js';

function newIndex(options: { scalarScan?: boolean } = {}): VectorIndex {
  return new VectorIndex({ table: 'embeddings', idColumn: 'id', vectorColumn: 'vector', ...options });
}

function row(id: string, vector: Float32Array | null) {
  return { id, model: 'test', vector };
}

function fill(index: VectorIndex, vectors: readonly Float32Array[]): void {
  vectors.forEach((v, i) => index.onInsert(row(`v${i}`, v)));
}

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(MemoryError);
    expect((error as MemoryError).code).toBe(code);
    return;
  }
  throw new Error(`expected a MemoryError ${code}, nothing was thrown`);
}

describe('VectorIndex', () => {
  test('recall@10 is at least 0.95 against exact search (20k x 64, random directions)', () => {
    const vectors = randomVectors(20_000, 64, 1);
    const queries = randomVectors(40, 64, 2);
    const index = newIndex();
    fill(index, vectors);
    let found = 0;
    for (const query of queries) {
      const exact = new Set(exactTopK(vectors, query, 10).map((h) => `v${h.index}`));
      for (const hit of index.search(query, 10)) if (exact.has(hit.id)) found++;
    }
    const recall = found / (queries.length * 10);
    expect(recall, `recall@10 = ${recall}`).toBeGreaterThanOrEqual(0.95);
  });

  test('scores are exact cosine similarities, best first', () => {
    const vectors = randomVectors(500, 32, 3);
    const index = newIndex();
    fill(index, vectors);
    const query = randomVectors(1, 32, 4)[0]!;
    const exact = exactTopK(vectors, query, 5);
    const hits = index.search(query, 5);
    expect(hits.map((h) => h.id)).toEqual(exact.map((h) => `v${h.index}`));
    hits.forEach((h, i) => expect(h.score).toBeCloseTo(exact[i]!.score, 6));
  });

  test('the SIMD scan and the scalar scan give the same answers', () => {
    const vectors = randomVectors(3_000, 100, 5);
    const simd = newIndex();
    const scalar = newIndex({ scalarScan: true });
    expect(scalar.simd).toBe(false);
    fill(simd, vectors);
    fill(scalar, vectors);
    for (const query of randomVectors(20, 100, 6)) {
      expect(simd.search(query, 10)).toEqual(scalar.search(query, 10));
    }
  });

  test('a deleted vector is never returned, even for a query equal to it', () => {
    const vectors = randomVectors(2_000, 48, 7);
    const index = newIndex();
    fill(index, vectors);
    const deleted = new Set<string>();
    vectors.forEach((v, i) => {
      if (i % 2 === 0) {
        index.onDelete(row(`v${i}`, v));
        deleted.add(`v${i}`);
      }
    });
    expect(index.size).toBe(1_000);
    for (let i = 0; i < 200; i += 2) {
      const hits = index.search(vectors[i]!, 50);
      expect(hits).toHaveLength(50);
      for (const hit of hits) expect(deleted.has(hit.id), `deleted ${hit.id} returned`).toBe(false);
    }
  });

  test('an id deleted and inserted again is found by its new vector only', () => {
    const [a, b, c] = randomVectors(3, 16, 8) as [Float32Array, Float32Array, Float32Array];
    const index = newIndex();
    index.onInsert(row('x', a));
    index.onInsert(row('y', c));
    index.onDelete(row('x', a));
    index.onInsert(row('x', b));
    expect(index.size).toBe(2);
    expect(index.search(b, 1)[0]).toMatchObject({ id: 'x' });
    expect(index.search(b, 1)[0]!.score).toBeCloseTo(1, 6);
    expect(index.search(a, 2).map((h) => h.score)).not.toContainEqual(expect.closeTo(1, 6));
  });

  test('a second insert of the same id replaces the first (an update)', () => {
    const [a, b] = randomVectors(2, 16, 9) as [Float32Array, Float32Array];
    const index = newIndex();
    index.onInsert(row('x', a));
    index.onInsert(row('x', b));
    expect(index.size).toBe(1);
    expect(index.search(a, 10)).toHaveLength(1);
    expect(index.search(b, 1)[0]!.score).toBeCloseTo(1, 6);
  });

  test('a filter returns k matches whenever k exist, the exact best among them', () => {
    const vectors = randomVectors(10_000, 32, 10);
    const index = newIndex();
    fill(index, vectors);
    // One in 500 passes: far fewer than the rerank depth would find by score alone.
    const accept = (i: number) => i % 500 === 7;
    for (const query of randomVectors(10, 32, 11)) {
      const hits = index.search(query, 10, (id) => accept(Number(id.slice(1))));
      const exact = exactTopK(vectors, query, 10, accept);
      expect(hits.map((h) => h.id)).toEqual(exact.map((h) => `v${h.index}`));
    }
    expect(index.search(vectors[0]!, 100, (id) => accept(Number(id.slice(1))))).toHaveLength(20);
    expect(index.search(vectors[0]!, 10, () => false)).toEqual([]);
  });

  test('k larger than the index returns everything, best first', () => {
    const vectors = randomVectors(7, 8, 12);
    const index = newIndex();
    fill(index, vectors);
    const hits = index.search(vectors[3]!, 100);
    expect(hits).toHaveLength(7);
    expect(hits[0]).toMatchObject({ id: 'v3' });
    for (let i = 1; i < hits.length; i++) expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(hits[i]!.score);
    expect(newIndex().search(vectors[0]!, 10)).toEqual([]);
  });

  test('k outside 1..searchKMax is refused', () => {
    const index = newIndex();
    fill(index, randomVectors(3, 8, 13));
    const query = randomVectors(1, 8, 14)[0]!;
    for (const k of [0, -1, 1.5, searchKMax + 1, Number.NaN]) expectCode(() => index.search(query, k), 'invalid_argument');
  });

  test('zero vectors are held but never returned; a zero query is refused', () => {
    const vectors = randomVectors(3, 8, 15);
    const index = newIndex();
    fill(index, vectors);
    index.onInsert(row('zero', new Float32Array(8)));
    expect(index.size).toBe(4);
    expect(index.has('zero')).toBe(true);
    expect(index.search(vectors[0]!, 10).map((h) => h.id)).not.toContain('zero');
    expectCode(() => index.search(new Float32Array(8), 10), 'invalid_argument');
    index.onDelete(row('zero', new Float32Array(8)));
    expect(index.size).toBe(3);
  });

  test('a row without a vector is not indexed, and deleting it is harmless', () => {
    const index = newIndex();
    index.onInsert(row('none', null));
    index.onDelete(row('none', null));
    expect(index.size).toBe(0);
  });

  test('vectors of several dimensions live side by side; a query searches its own', () => {
    const index = newIndex();
    const narrow = randomVectors(30, 8, 16);
    const wide = randomVectors(30, 12, 22);
    narrow.forEach((v, i) => index.onInsert(row(`n${i}`, v)));
    wide.forEach((v, i) => index.onInsert(row(`w${i}`, v)));
    expect(index.size).toBe(60);
    expect(index.dimensions).toEqual([8, 12]);
    const narrowHits = index.search(narrow[4]!, 100);
    expect(narrowHits).toHaveLength(30);
    expect(narrowHits[0]).toMatchObject({ id: 'n4' });
    expect(narrowHits.every((h) => h.id.startsWith('n'))).toBe(true);
    expect(index.search(wide[9]!, 1)[0]).toMatchObject({ id: 'w9' });
  });

  test('a query of a dimension the index does not hold is refused', () => {
    const index = newIndex();
    fill(index, randomVectors(3, 8, 16));
    expectCode(() => index.search(new Float32Array(9).fill(1), 1), 'invalid_argument');
    expectCode(() => index.search(new Float32Array(0), 1), 'limit_exceeded');
    expect(newIndex().search(new Float32Array(9).fill(1), 1)).toEqual([]);
  });

  test('an emptied or cleared index takes a new dimension', () => {
    const index = newIndex();
    const [a] = randomVectors(1, 8, 17) as [Float32Array];
    index.onInsert(row('a', a));
    index.onDelete(row('a', a));
    expect(index.dimensions).toEqual([]);
    const wide = randomVectors(50, 40, 18);
    fill(index, wide);
    expect(index.search(wide[7]!, 1)[0]).toMatchObject({ id: 'v7' });
    index.clear();
    expect(index.size).toBe(0);
    const narrow = randomVectors(5, 3, 19);
    fill(index, narrow);
    expect(index.search(narrow[2]!, 1)[0]).toMatchObject({ id: 'v2' });
  });

  test('a score is a cosine, in [-1, 1], also where float64 rounding lands past it', () => {
    // Vectors against themselves and their opposites: before scores were clamped, [1, 2, 3] scored 1 + 2^-52 against itself.
    const vectors = [Float32Array.of(1, 2, 3), Float32Array.of(0.1, 0.7, 0.3), ...randomVectors(200, 7, 30)];
    const index = newIndex();
    vectors.forEach((v, i) => {
      index.onInsert(row(`v${i}`, v));
      index.onInsert(row(`n${i}`, v.map((x) => -x)));
    });
    for (const query of vectors) {
      for (const hit of index.search(query, 1000)) expect(Math.abs(hit.score), `${hit.id}: ${hit.score}`).toBeLessThanOrEqual(1);
    }
  });

  test('equal scores are ordered by id, whatever the insert order', () => {
    const v = Float32Array.of(1, 2, 3, 4);
    const index = newIndex();
    for (const id of ['c', 'a', 'd', 'b']) index.onInsert(row(id, v));
    expect(index.search(v, 4).map((h) => h.id)).toEqual(['a', 'b', 'c', 'd']);
  });

  test('more equal scores than are rescored (rerankDepth): the smallest ids, whatever the insert order', () => {
    const v = Float32Array.of(1, 2, 3, 4);
    const ids = Array.from({ length: rerankDepth(3) + 20 }, (_, i) => `e${String(i).padStart(3, '0')}`);
    for (const order of [ids, [...ids].reverse()]) {
      const index = newIndex();
      for (const id of order) index.onInsert(row(id, v));
      expect(index.search(v, 3).map((h) => h.id), `inserted ${order[0]} first`).toEqual(['e000', 'e001', 'e002']);
      expect(index.search(v, 1, (id) => id > 'e010').map((h) => h.id)).toEqual(['e011']);
    }
  });

  test('after any sequence of inserts and deletes the index holds exactly the model', () => {
    // Two dimensions and a zero vector in the pool, so partitions come and go.
    const pool = [...randomVectors(20, 12, 20), ...randomVectors(19, 6, 23), new Float32Array(6)];
    const op = fc.record({ insert: fc.boolean(), id: fc.integer({ min: 0, max: 15 }), vector: fc.integer({ min: 0, max: pool.length - 1 }) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const index = newIndex();
        const model = new Map<string, Float32Array>();
        for (const { insert, id, vector } of ops) {
          const key = `o${id}`;
          const old = model.get(key);
          if (old) index.onDelete(row(key, old));
          model.delete(key);
          if (insert) {
            index.onInsert(row(key, pool[vector]!));
            model.set(key, pool[vector]!);
          }
        }
        expect(index.size).toBe(model.size);
        for (const query of [pool[0]!, pool[20]!]) {
          const entries = [...model].filter(([, v]) => v.length === query.length && v.some((x) => x !== 0));
          const held = [...model.values()].some((v) => v.length === query.length);
          if (!held && model.size > 0) {
            expectCode(() => index.search(query, searchKMax), 'invalid_argument');
            continue;
          }
          const hits = index.search(query, searchKMax);
          expect(hits.map((h) => h.id).sort()).toEqual(entries.map(([id]) => id).sort());
          const exact = exactTopK(entries.map(([, v]) => v), query, entries.length);
          hits.forEach((h, i) => expect(h.score).toBeCloseTo(exact[i]!.score, 5));
        }
      }),
      { numRuns: 200, seed: 42 },
    );
  });
});

describe('VectorIndex refusals leave it unchanged', () => {
  test('a refused replacement keeps the old vector', () => {
    const [a, b] = randomVectors(2, 8, 21) as [Float32Array, Float32Array];
    const index = newIndex();
    index.onInsert(row('x', a));
    index.onInsert(row('y', b));
    expectCode(() => index.onInsert(row('x', Float32Array.of(1, Number.NaN, 0, 0, 0, 0, 0, 0))), 'invalid_argument');
    expect(index.search(a, 1)[0]).toMatchObject({ id: 'x' });
    expect(index.search(a, 1)[0]!.score).toBeCloseTo(1, 6);
  });

  test('replacing the only vector may change the dimension', () => {
    const index = newIndex();
    index.onInsert(row('x', Float32Array.of(1, 0, 0)));
    index.onInsert(row('x', Float32Array.of(0, 1, 0, 0, 0)));
    expect(index.dimensions).toEqual([5]);
    expect(index.search(Float32Array.of(0, 1, 0, 0, 0), 1)[0]!.score).toBeCloseTo(1, 6);
  });
});

describe('VectorIndex: quantisation never drops a true best', () => {
  // A large shared component leaves every other component 0 after int8 quantisation, so all
  // approximate scores tie; the exact top-k must still come back (here it ranks by component 1).
  for (const scalarScan of [false, true]) {
    test(`dominant component, k=5 (${scalarScan ? 'scalar' : 'simd'})`, () => {
      const index = newIndex({ scalarScan });
      const vectors: Float32Array[] = [];
      for (let i = 0; i < 300; i++) vectors.push(Float32Array.from([1000, i * 1e-3, 0.5, 0.25]));
      fill(index, vectors);
      const query = Float32Array.from([0, 1, 0, 0]);
      const got = index.search(query, 5).map((h) => h.id);
      expect(got).toEqual(exactTopK(vectors, query, 5).map((h) => `v${h.index}`));
      expect(got).toEqual(['v299', 'v298', 'v297', 'v296', 'v295']);
    });
  }
});
