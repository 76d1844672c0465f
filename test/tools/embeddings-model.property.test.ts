/**
 * Property: any sequence of object_put, object_delete, embedding_put and embedding_delete,
 * called by name with JSON arguments by two callers, some with idempotency keys (retried with
 * the same or other arguments), some refused on purpose (zero, non-finite or mis-sized vectors,
 * absent objects), some sent together without waiting, with close + reopen and snapshot +
 * reopen between them, leaves embedding_search answering what a brute-force cosine scan of a
 * plain model answers: the k best (exact float64 cosine of the stored float32 vectors), best
 * first, equal scores by id, only those of the model, type and predicates asked for, and the
 * errors the model predicts (a model name unknown, a query of no model's length). Many
 * objects share a vector, so ties are common and more of them match than the index rescores
 * (rerankDepth): which of them come back must still be the smallest ids, before and after a
 * reopen from a snapshot (which rebuilds the index in another order). Reopening gives the
 * state hash it closed with.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Caller } from '../../storage/changes.js';
import { embeddingModelsMax, searchResultsDefault, searchResultsMax } from '../../tools/embeddings.js';
import { rerankDepth } from '../../tools/vector-index.js';
import { alice, attemptTool, bob, describeCall, openFixture, reopenChecked, WriteLedger, type Fixture, type Outcome, type PlannedCall } from './memory-fixture.js';

type Who = 0 | 1;
const callers: readonly Caller[] = [alice, bob];

// ---- the model

interface ModelObject { readonly type: string; readonly n: number }
interface ModelEmbedding { readonly model: string; readonly vector: Float32Array }

class Model extends WriteLedger {
  readonly objects = new Map<string, ModelObject>();
  readonly embeddings = new Map<string, ModelEmbedding>();

  /** A model lives while an embedding uses it; its dimensions are that embedding's. */
  models(): Map<string, number> {
    const out = new Map<string, number>();
    for (const e of this.embeddings.values()) out.set(e.model, e.vector.length);
    return out;
  }
}

/** Cosine in float64 of float32 vectors (what the store holds). */
function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(aa * bb);
}

const sameVector = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => x === b[i]);

// ---- the operations

/** Vectors of 2, 3 and 4 dimensions: a few directions, some repeated, one a multiple of another. */
const vectorPool: readonly number[][] = [
  [1, 0], [0, 1], [1, 1], [2, 2], [1, -1], [-3, 1], [0.5, 0.25],
  [1, 2, 3], [1, 0, 0], [0, 0, 1], [1, 1, 1], [-1, 2, 0],
  [1, 2, 3, 4], [0, 0, 0, 1],
];
/** Vectors embedding_put and embedding_search must refuse: all zeros, past float32, empty. */
const badVectors: readonly number[][] = [[0, 0], [0, 0, 0], [1e39, 1], []];
const modelNames = ['m2', 'm2b', 'm3', 'm4', 'other/model@1'];
const objectTypes = ['doc', 'img'];
const fixedIds = Array.from({ length: 12 }, (_, i) => `o${String(i).padStart(2, '0')}`);

type WriteOp =
  | { kind: 'put_object'; who: Who; key?: string; id: number; type: string; n: number }
  | { kind: 'delete_object'; who: Who; key?: string; id: number }
  | { kind: 'put_embedding'; who: Who; key?: string; id: number; model: string; vector: number[] }
  | { kind: 'delete_embedding'; who: Who; key?: string; id: number };

interface Search { vector: number[]; k?: number; model?: string; type?: string; nAtLeast?: number }

type Op =
  | WriteOp
  | { kind: 'retry'; pick: number; alter: boolean }
  | { kind: 'reopen'; snapshot: boolean }
  | { kind: 'burst'; writes: WriteOp[]; searchAfter: number; search: Search }
  /** Many objects with one vector, sent at once: more equal scores than the index rescores. */
  | { kind: 'crowd'; count: number; vector: number[]; type: string; reversed: boolean };

const who = fc.constantFrom<Who>(0, 1);
const key = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('k1', 'k2') });
const idRef = fc.nat(63);
const anyVector = fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...vectorPool) }, { weight: 1, arbitrary: fc.constantFrom(...badVectors) });

const writeOp: fc.Arbitrary<WriteOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('put_object' as const), who, key, id: idRef, type: fc.constantFrom(...objectTypes), n: fc.integer({ min: 0, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete_object' as const), who, key, id: idRef }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('put_embedding' as const), who, key, id: idRef, model: fc.constantFrom(...modelNames), vector: anyVector }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete_embedding' as const), who, key, id: idRef }) },
);
const search: fc.Arbitrary<Search> = fc.record({
  vector: anyVector,
  k: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(1, 2, 3, 10, searchResultsMax) }, { weight: 1, arbitrary: fc.constantFrom(0, searchResultsMax + 1) }),
  model: fc.constantFrom(...modelNames),
  type: fc.constantFrom(...objectTypes),
  nAtLeast: fc.integer({ min: 0, max: 4 }),
}, { requiredKeys: ['vector'] });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 12, arbitrary: writeOp },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('retry' as const), pick: fc.nat(), alter: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const), snapshot: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('burst' as const), writes: fc.array(writeOp, { minLength: 2, maxLength: 8 }), searchAfter: fc.nat(), search }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('crowd' as const), count: fc.integer({ min: rerankDepth(1) + 2, max: rerankDepth(1) + 20 }),
      vector: fc.constantFrom(...vectorPool), type: fc.constantFrom(...objectTypes), reversed: fc.boolean(),
    }),
  },
);

class Run {
  crowds = 0;
  constructor(readonly f: Fixture, readonly m: Model) {}

  id(ref: number): string {
    return fixedIds[ref % fixedIds.length]!;
  }

  attempt(tool: string, args: unknown, w: Who = 0): Promise<Outcome> {
    return attemptTool(this.f, tool, args, callers[w]);
  }

  resolve(o: WriteOp): PlannedCall {
    const m = this.m;
    const id = this.id(o.id);
    const call = (tool: string, args: Record<string, unknown>, plan: PlannedCall['plan'], early?: string): PlannedCall => ({ tool, args, caller: callers[o.who]!, key: o.key, plan, early });
    switch (o.kind) {
      case 'put_object':
        return call('object_put', { id, type: o.type, attributes: { n: o.n } }, () => ({
          result: { id, version: expect.any(Number) },
          apply: () => void m.objects.set(id, { type: o.type, n: o.n }),
        }));
      case 'delete_object':
        return call('object_delete', { id }, () => {
          if (!m.objects.has(id)) return { error: 'not_found' };
          return {
            result: { version: expect.any(Number), relations_removed: 0 },
            apply: () => {
              m.objects.delete(id);
              m.embeddings.delete(id);
            },
          };
        });
      case 'delete_embedding':
        return call('embedding_delete', { object_id: id }, () => (m.embeddings.has(id)
          ? { result: {}, apply: () => void m.embeddings.delete(id) }
          : { error: 'not_found' }));
      case 'put_embedding':
        return call('embedding_put', { object_id: id, model: o.model, vector: o.vector }, () => {
          if (!m.objects.has(id)) return { error: 'not_found' };
          const vector = Float32Array.from(o.vector);
          if (vector.some((x) => !Number.isFinite(x)) || vector.every((x) => x === 0)) return { error: 'invalid_argument' };
          const models = m.models();
          const dims = models.get(o.model);
          if (dims !== undefined && dims !== vector.length) return { error: 'invalid_argument' };
          if (dims === undefined && models.size >= embeddingModelsMax) return { error: 'limit_exceeded' };
          return { result: { dims: vector.length }, apply: () => void m.embeddings.set(id, { model: o.model, vector }) };
        // An empty vector is refused with the arguments, before any key is looked up.
        }, o.vector.length === 0 ? 'invalid_argument' : undefined);
    }
  }

  send(c: PlannedCall): Promise<Outcome> {
    return this.m.send(this.f, c);
  }

  expectOutcome(c: PlannedCall, got: Outcome): boolean {
    return this.m.expectOutcome(c, got) !== undefined;
  }

  async write(c: PlannedCall): Promise<void> {
    const before = this.f.mark();
    if (!this.expectOutcome(c, await this.send(c))) expect(this.f.mark(), `${describeCall(c)} wrote nothing`).toEqual(before);
  }

  /** embedding_search's answer as the model sees it now: refused, or checked against a brute-force scan. */
  expectSearch(s: Search, got: Outcome): void {
    const what = `embedding_search ${JSON.stringify(s)}`;
    const args = this.searchArgs(s);
    const refused = (code: string, message?: RegExp) => expect(got, what).toMatchObject({ ok: false, code, ...(message ? { message: expect.stringMatching(message) } : {}) });
    if (s.vector.length === 0 || (s.k !== undefined && (s.k < 1 || s.k > searchResultsMax))) return refused('invalid_argument');
    const query = Float32Array.from(s.vector);
    if (query.some((x) => !Number.isFinite(x))) return refused('invalid_argument', /finite/);
    if (query.every((x) => x === 0)) return refused('invalid_argument', /zero/);
    const models = this.m.models();
    if (args['model'] !== undefined) {
      const dims = models.get(s.model!);
      if (dims === undefined) return refused('not_found', new RegExp(`no embeddings under model ${s.model}`));
      if (dims !== query.length) return refused('invalid_argument', new RegExp(`has ${dims} dimensions; the query has ${query.length}`));
    } else if (models.size > 0 && ![...models.values()].includes(query.length)) {
      return refused('invalid_argument', new RegExp(`no model has ${query.length} dimensions`));
    }
    if (!got.ok) throw new Error(`${what} failed: ${got.code} ${got.message}`);
    const candidates = [...this.m.embeddings]
      .filter(([id, e]) => {
        const o = this.m.objects.get(id)!;
        return e.vector.length === query.length && (args['model'] === undefined || e.model === s.model)
          && (args['type'] === undefined || o.type === s.type) && (s.nAtLeast === undefined || o.n >= s.nAtLeast);
      })
      .map(([id, e]) => ({ id, score: cosine(query, e.vector), vector: e.vector, type: this.m.objects.get(id)!.type }))
      .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1));
    const k = s.k ?? searchResultsDefault;
    const results = got.value['results'] as { id: string; score: number; type: string }[];
    expect(results.length, `${what}: min(k, matching) results`).toBe(Math.min(k, candidates.length));
    const byId = new Map(candidates.map((c) => [c.id, c]));
    for (const [i, r] of results.entries()) {
      const c = byId.get(r.id);
      expect(c, `${what}: result ${r.id} is one that matches`).toBeDefined();
      expect(r.type, `${what}: type of ${r.id}`).toBe(c!.type);
      expect(Math.abs(r.score - c!.score), `${what}: score of ${r.id} is its cosine`).toBeLessThan(1e-9);
      expect(Math.abs(r.score), `${what}: score of ${r.id} is a cosine, in [-1, 1]`).toBeLessThanOrEqual(1);
      const prev = results[i - 1];
      if (prev) expect(prev.score > r.score || (prev.score === r.score && prev.id < r.id), `${what}: best first, equal scores by id (${prev.id}, ${r.id})`).toBe(true);
    }
    expect(new Set(results.map((r) => r.id)).size, `${what}: each once`).toBe(results.length);
    const last = results.at(-1);
    if (!last) return;
    const returned = new Set(results.map((r) => r.id));
    for (const c of candidates) {
      if (returned.has(c.id)) continue;
      expect(c.score, `${what}: ${c.id} scores ${c.score}, better than the last result ${last.id}`).toBeLessThanOrEqual(last.score + 1e-9);
      // An equal vector scores exactly the same: the smaller id comes first.
      for (const r of results) {
        if (c.id < r.id && sameVector(byId.get(r.id)!.vector, c.vector)) {
          throw new Error(`${what}: ${r.id} returned but ${c.id}, with the same vector (an equal score), left out`);
        }
      }
    }
  }

  searchArgs(s: Search): Record<string, unknown> {
    return {
      vector: s.vector,
      ...(s.k === undefined ? {} : { k: s.k }),
      ...(s.model === undefined ? {} : { model: s.model }),
      ...(s.type === undefined ? {} : { type: s.type }),
      ...(s.nAtLeast === undefined ? {} : { where: [{ path: 'n', op: 'gte', value: s.nAtLeast }] }),
    };
  }

  async checkSearch(s: Search): Promise<void> {
    this.expectSearch(s, await this.attempt('embedding_search', this.searchArgs(s)));
  }

  /** Every pool vector as a query, unfiltered and per model, with a k that cuts into ties. */
  async checkAll(): Promise<void> {
    expect(this.f.memory.store.lastOffset, 'the store\'s last offset').toBe(this.m.lastOffset);
    expect(this.f.memory.vectors.size, 'the index holds every embedding').toBe(this.m.embeddings.size);
    for (const vector of vectorPool) {
      await this.checkSearch({ vector, k: 1 });
      await this.checkSearch({ vector, k: 7 });
      await this.checkSearch({ vector, k: searchResultsMax, type: 'doc' });
      for (const model of this.m.models().keys()) await this.checkSearch({ vector, model, k: 3 });
    }
  }

  async retry(pick: number, alter: boolean): Promise<void> {
    const again = this.m.retry(pick, alter, otherArguments);
    if (again) await this.write(again);
  }

  /** Writes sent without waiting, a search sent between them: each answers as the model after the calls sent before it. */
  async burst(writes: readonly WriteOp[], searchAfter: number, s: Search): Promise<void> {
    const calls = writes.map((w) => this.resolve(w));
    const sent: Promise<Outcome>[] = [];
    let searched: Promise<Outcome> | undefined;
    for (const [i, c] of calls.entries()) {
      sent.push(this.send(c));
      if (i === searchAfter % calls.length) searched = this.attempt('embedding_search', this.searchArgs(s));
    }
    const outcomes = await Promise.all(sent);
    for (const [i, c] of calls.entries()) {
      this.expectOutcome(c, outcomes[i]!);
      if (i === searchAfter % calls.length) this.expectSearch(s, await searched!);
    }
  }

  /** count new objects with one vector under one model, every put sent at once; then a search for it. */
  async crowd(count: number, vector: number[], type: string, reversed: boolean): Promise<void> {
    const model = `crowd${vector.length}`;
    const n = this.crowds++;
    const ids = Array.from({ length: count }, (_, i) => `c${n}-${String(i).padStart(3, '0')}`);
    if (reversed) ids.reverse();
    if (this.m.models().size >= embeddingModelsMax && !this.m.models().has(model)) return;
    const calls: PlannedCall[] = ids.flatMap((id) => [
      { tool: 'object_put', args: { id, type, attributes: { n: 0 } }, caller: alice, plan: () => ({ result: { id, version: 1 }, apply: () => void this.m.objects.set(id, { type, n: 0 }) }) },
      this.crowdEmbedding(id, model, vector),
    ]);
    const outcomes = await Promise.all(calls.map((c) => this.send(c)));
    for (const [i, c] of calls.entries()) this.expectOutcome(c, outcomes[i]!);
    await this.checkSearch({ vector, k: 1 });
    await this.checkSearch({ vector, k: 3, model });
  }

  crowdEmbedding(id: string, model: string, vector: number[]): PlannedCall {
    return {
      tool: 'embedding_put', args: { object_id: id, model, vector }, caller: bob,
      plan: () => {
        const dims = this.m.models().get(model);
        if (dims !== undefined && dims !== vector.length) return { error: 'invalid_argument' };
        return { result: { dims: vector.length }, apply: () => void this.m.embeddings.set(id, { model, vector: Float32Array.from(vector) }) };
      },
    };
  }

  async run(o: Op): Promise<void> {
    switch (o.kind) {
      case 'retry':
        return this.retry(o.pick, o.alter);
      case 'reopen': {
        await reopenChecked(this.f, o.snapshot);
        return this.checkAll();
      }
      case 'burst':
        return this.burst(o.writes, o.searchAfter, o.search);
      case 'crowd':
        return this.crowd(o.count, o.vector, o.type, o.reversed);
      default:
        return this.write(this.resolve(o));
    }
  }
}

/** Arguments a keyed retry must be refused for (conflict), not answered as the first call. */
function otherArguments(tool: string, args: Record<string, any>): Record<string, unknown> {
  switch (tool) {
    case 'object_put': return { ...args, attributes: { n: args['attributes'].n + 1 } };
    case 'embedding_put': return { ...args, vector: [...args['vector'], 1] };
    case 'object_delete':
    case 'embedding_delete': return { ...args, [tool === 'object_delete' ? 'id' : 'object_id']: 'elsewhere' };
    default: throw new Error(`no other arguments for ${tool}`);
  }
}

const shrinkingTimeMax = 120_000;

describe('embeddings tools against a brute-force model', () => {
  test('random puts, deletes, retries, bursts, crowds of equal vectors and reopens leave embedding_search equal to an exact scan', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(op, search), { minLength: 1, maxLength: 30, size: 'max' }), async (steps) => {
      const f = await openFixture();
      try {
        const run = new Run(f, new Model(f.memory.store.lastOffset));
        for (const [o, s] of steps) {
          await run.run(o);
          await run.checkSearch(s);
        }
        await reopenChecked(f, true);
        await run.checkAll();
      } finally {
        await f.close();
      }
    }), { numRuns: 30, interruptAfterTimeLimit: shrinkingTimeMax });
  }, shrinkingTimeMax * 2);
});
