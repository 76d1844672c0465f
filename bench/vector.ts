/**
 * Similarity search over 100,000 vectors of 384 dimensions (10,000 with --quick), k = 10:
 * latency p50/p99 and recall@10 of the VectorIndex, beside exact search by a tight float32
 * scan over normalised vectors (the peer). Vectors are random directions, the hardest case
 * for a quantised scan (true neighbours are nearly tied). Also: build (= rebuild on every
 * store open) time, a 1%-selective filtered search, the index's own bytes per vector, and a
 * real store's open from a snapshot of those embeddings, with and without the index.
 */
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { defineReducer, type StoreModule } from '../storage/reducer.js';
import { randomVectors, seededGaussian } from '../test/vector/vector-data.js';
import type { Bench, BenchContext } from './bench.js';
import { importBuilt } from './built.js';
import { nowMs, Samples } from './stats.js';

// The store, the index and the exact scan's best-k are the built ones (bench/built.ts), as users run them.
const { Store } = await importBuilt<typeof import('../storage/store.js')>('storage/store.js');
const { BestSlots } = await importBuilt<typeof import('../tools/vector-best.js')>('tools/vector-best.js');
const { VectorIndex } = await importBuilt<typeof import('../tools/vector-index.js')>('tools/vector-index.js');

const dims = 384;
const k = 10;
const exactPeer = 'exact float32 scan';

interface Sizes {
  readonly vectors: number;
  readonly timedQueries: number;
  readonly exactQueries: number;
  readonly recallQueries: number;
}

function sizesFor(ctx: BenchContext): Sizes {
  return ctx.quick
    ? { vectors: 10_000, timedQueries: 100, exactQueries: 20, recallQueries: 20 }
    : { vectors: 100_000, timedQueries: 1_000, exactQueries: 100, recallQueries: 100 };
}

/**
 * Exact cosine search the plain way: one contiguous normalised matrix, a dot per row summed
 * in float64. It is both the latency peer and the ground truth for recall.
 */
class ExactScan {
  private readonly matrix: Float32Array;

  constructor(vectors: readonly Float32Array[]) {
    this.matrix = new Float32Array(vectors.length * dims);
    vectors.forEach((v, i) => {
      let sum = 0;
      for (const x of v) sum += x * x;
      const inv = 1 / Math.sqrt(sum);
      for (let d = 0; d < dims; d++) this.matrix[i * dims + d] = v[d]! * inv;
    });
  }

  search(query: Float32Array, accept?: (index: number) => boolean): number[] {
    const best = new BestSlots(k);
    const m = this.matrix;
    const rows = m.length / dims;
    for (let i = 0, base = 0; i < rows; i++, base += dims) {
      if (accept && !accept(i)) continue;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let d = 0; d < dims; d += 4) {
        s0 += m[base + d]! * query[d]!;
        s1 += m[base + d + 1]! * query[d + 1]!;
        s2 += m[base + d + 2]! * query[d + 2]!;
        s3 += m[base + d + 3]! * query[d + 3]!;
      }
      const score = s0 + s1 + s2 + s3;
      if (score > best.threshold) best.offer(score, i);
    }
    return best.slotList();
  }
}

export const vectorBench: Bench = {
  name: 'vector',
  description: 'similarity search 100k x 384, k=10: p50/p99 and recall@10 vs exact scan; build time',
  async run(ctx) {
    const sizes = sizesFor(ctx);
    const label = `${sizes.vectors / 1000}k x ${dims}`;
    ctx.progress(`generating ${label} vectors`);
    const vectors = randomVectors(sizes.vectors, dims, 1);
    const queries = randomVectors(sizes.timedQueries, dims, 2);
    const ids = vectors.map((_, i) => `v${i}`);

    const before = await ctx.settledMemory();
    const buildStartMs = nowMs();
    const index = new VectorIndex({ table: 'embeddings', idColumn: 'id', vectorColumn: 'vector' });
    vectors.forEach((vector, i) => index.onInsert({ id: ids[i]!, vector }));
    const buildMs = nowMs() - buildStartMs;
    const after = await ctx.settledMemory();
    if (!index.simd) ctx.progress('WebAssembly SIMD unavailable: scalar scan');

    ctx.progress('timed searches');
    const ours = new Samples();
    for (const query of queries) {
      const t0 = nowMs();
      index.search(query, k);
      ours.add(nowMs() - t0);
    }
    const exact = new ExactScan(vectors);
    const peer = new Samples();
    for (const query of queries.slice(0, sizes.exactQueries)) {
      const t0 = nowMs();
      exact.search(query);
      peer.add(nowMs() - t0);
    }

    // Filtered: one vector in a hundred passes.
    const accept = (i: number) => i % 100 === 3;
    const acceptId = (id: string) => accept(Number(id.slice(1)));
    const oursFiltered = new Samples();
    const peerFiltered = new Samples();
    let filteredShort = 0;
    for (const query of queries.slice(0, sizes.exactQueries)) {
      let t0 = nowMs();
      const hits = index.search(query, k, acceptId);
      oursFiltered.add(nowMs() - t0);
      if (hits.length < k || !hits.every((h) => acceptId(h.id))) filteredShort++;
      t0 = nowMs();
      exact.search(query, accept);
      peerFiltered.add(nowMs() - t0);
    }
    if (filteredShort > 0) throw new Error(`${filteredShort} filtered searches returned fewer than ${k} matching hits`);

    ctx.progress('recall against exact search');
    let found = 0;
    for (const query of queries.slice(0, sizes.recallQueries)) {
      const truth = new Set(exact.search(query).map((i) => ids[i]));
      for (const hit of index.search(query, k)) if (truth.has(hit.id)) found++;
    }
    const recall = found / (sizes.recallQueries * k);

    const o = ours.summary();
    const p = peer.summary();
    const of = oursFiltered.summary();
    const pf = peerFiltered.summary();
    ctx.emit({ metric: `search p50, ${label}, k=${k}`, unit: 'ms', ours: o.p50Ms, better: 'lower', peer: { name: exactPeer, value: p.p50Ms } });
    ctx.emit({ metric: `search p99, ${label}, k=${k}`, unit: 'ms', ours: o.p99Ms, better: 'lower', peer: { name: exactPeer, value: p.p99Ms } });
    ctx.emit({ metric: `recall@${k}, ${label}`, unit: 'fraction', ours: recall, better: 'higher', peer: { name: exactPeer, value: 1 } });
    ctx.emit({ metric: `filtered (1%) search p99, ${label}`, unit: 'ms', ours: of.p99Ms, better: 'lower', peer: { name: `${exactPeer}, filtered`, value: pf.p99Ms } });
    ctx.emit({ metric: `index build (store open), ${label}`, unit: 'ms', ours: buildMs, better: 'lower' });
    // WebAssembly memory is not in process.memoryUsage(): the index reports it; the heap delta covers ids and maps.
    const heapBytes = after.heapUsed - before.heapUsed;
    ctx.emit({ metric: 'index bytes per vector (beside the rows)', unit: 'bytes', ours: (heapBytes + index.memoryBytes) / sizes.vectors, better: 'lower' });

    await storeOpenFigures(ctx, sizes.vectors, label);
  },
};

/** Rows written per transaction when filling the store (a frame of about 1.6 MB). */
const rowsPerTx = 1000;

const embeddingsModule: StoreModule = {
  tables: [{ name: 'embeddings', columns: [{ name: 'id', type: 'string' }, { name: 'vector', type: 'vector' }], primaryKey: ['id'] }],
  reducers: [defineReducer({
    name: 'put_random',
    args: z.object({ first: z.number().int().min(0), count: z.number().int().min(1).max(rowsPerTx) }),
    // Deterministic: the vectors are a function of the arguments (seeded), as a reducer's must be.
    run(ctx, { first, count }) {
      const gaussian = seededGaussian(first + 1);
      const table = ctx.table('embeddings');
      for (let i = first; i < first + count; i++) table.insert({ id: `v${i}`, vector: Float32Array.from({ length: dims }, gaussian) });
    },
  })],
};

/** A store holding `count` embeddings opened from its snapshot: without the index, then with it. */
async function storeOpenFigures(ctx: BenchContext, count: number, label: string): Promise<void> {
  const dir = path.join(ctx.dataDir, 'store');
  mkdirSync(dir, { recursive: true });
  ctx.progress(`store with ${label} embeddings`);
  let store = await Store.open({ dir, module: embeddingsModule });
  for (let first = 0; first < count; first += rowsPerTx) {
    await store.call('put_random', { first, count: Math.min(rowsPerTx, count - first) }, { tenant: 'bench', subject: 'bench' });
  }
  await store.snapshot();
  await store.close();

  let t0 = nowMs();
  store = await Store.open({ dir, module: embeddingsModule });
  const withoutMs = nowMs() - t0;
  await store.close();

  const index = new VectorIndex({ table: 'embeddings', idColumn: 'id', vectorColumn: 'vector' });
  t0 = nowMs();
  store = await Store.open({ dir, module: embeddingsModule, derived: [index] });
  const withMs = nowMs() - t0;
  if (index.size !== count) throw new Error(`index holds ${index.size} of ${count} embeddings after open`);
  await store.close();
  ctx.emit({ metric: `store open from snapshot, ${label} embeddings, with index`, unit: 'ms', ours: withMs, better: 'lower' });
  ctx.emit({ metric: `store open from snapshot, ${label} embeddings, no index`, unit: 'ms', ours: withoutMs, better: 'lower' });
}
