/**
 * Property: any sequence of the objects tools (object_put, object_patch, object_delete,
 * object_link, object_unlink, type_define), called by name with JSON arguments as an MCP
 * tools/call reaches them, some with idempotency keys, some failing on purpose, some sent
 * together without waiting (group commit), with close + reopen and snapshot (+ reopen) between
 * them, leaves every read tool answering what a plain model says, after every step: object_get,
 * object_find (predicates, order, every page walked: each match once, in order; across a write,
 * every object it left alone once), object_neighbors, object_history (paged, with images),
 * object_get_as_of at past offsets. A retried key returns the first result and writes nothing;
 * another call under it is `conflict` while the log holds the first. What the log no longer
 * holds after snapshots is said as such (image `gone`, as-of `not_found`), never invented.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Caller } from '../../storage/changes.js';
import type { Store } from '../../storage/store.js';
import { attributesBytesMax } from '../../tools/objects.js';
import { pageItemsBytesMax } from '../../tools/result-page.js';
import { pageSizeDefault } from '../../tools/tool.js';
import { cursorSortValueBytesMax, historyImagesPerPageMax } from '../../tools/query.js';
import { alice, attemptTool, bob, openFixture, type Fixture, type Outcome } from './memory-fixture.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Attrs = { [key: string]: Json };
type Who = 0 | 1;
const callers: readonly Caller[] = [alice, bob];

// ---- the model

interface ModelObject { readonly type: string; readonly attributes: Attrs; readonly version: number }
interface ModelVersion {
  readonly version: number; readonly offset: number; readonly op: 'put' | 'patch' | 'delete'; readonly reducer: string;
  readonly caller: string; readonly type?: string; readonly attributes?: Attrs;
}
interface Relation { readonly src: string; readonly kind: string; readonly dst: string }

/** The schemas type_define is given, and what each accepts (draft-07, as Ajv reads them). */
const schemas = {
  any: { schema: { type: 'object' }, accepts: (_a: Attrs) => true },
  intN: { schema: { type: 'object', properties: { n: { type: 'integer' } } }, accepts: (a: Attrs) => !('n' in a) || Number.isInteger(a['n']) },
  needsN: { schema: { type: 'object', required: ['n'] }, accepts: (a: Attrs) => 'n' in a },
  shortS: {
    schema: { type: 'object', properties: { s: { type: 'string', maxLength: 3 } } },
    accepts: (a: Attrs) => !('s' in a) || (typeof a['s'] === 'string' && [...a['s']].length <= 3),
  },
} as const;
type SchemaName = keyof typeof schemas;
const schemaNames = Object.keys(schemas) as SchemaName[];

class Model {
  readonly objects = new Map<string, ModelObject>();
  readonly versions = new Map<string, ModelVersion[]>();
  readonly relations = new Map<string, Relation>();
  readonly types = new Map<string, { version: number; schema: SchemaName; description: string }>();
  /** Idempotency keys by (tool, caller, key): the first call's arguments and result. */
  readonly keys = new Map<string, { args: string; result: Record<string, unknown> }>();
  /** Successful keyed calls, to retry. */
  readonly keyed: WriteCall[] = [];
  readonly generated: string[] = [];
  /** at_ms of each version as first read: it may never change. */
  readonly atMs = new Map<string, number>();
  /** Offsets of the snapshots taken, oldest first. */
  readonly snapshots: number[] = [];
  constructor(public lastOffset: number) {}

  ids(): string[] {
    return [...fixedIds, ...this.generated];
  }

  nextVersion(id: string): number {
    return (this.versions.get(id)?.at(-1)?.version ?? 0) + 1;
  }

  accepts(type: string, attributes: Attrs): boolean {
    const t = this.types.get(type);
    return t === undefined || schemas[t.schema].accepts(attributes);
  }

  write(id: string, op: ModelVersion['op'], caller: string, offset: number, object?: { type: string; attributes: Attrs }): number {
    const version = this.nextVersion(id);
    if (object) this.objects.set(id, { ...object, version });
    else this.objects.delete(id);
    const history = this.versions.get(id) ?? [];
    history.push({ version, offset, op, reducer: `object_${op}`, caller, ...object });
    this.versions.set(id, history);
    return version;
  }

  touching(id: string): Relation[] {
    return [...this.relations.values()].filter((r) => r.src === id || r.dst === id);
  }
}

const tooBig = (attributes: Attrs) => Buffer.byteLength(JSON.stringify(attributes)) > attributesBytesMax;
const relationKey = (r: Relation) => `${r.src}\u0000${r.kind}\u0000${r.dst}`;

/** JSON text with object keys sorted: equal JSON values, equal text. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : v));
}

/** The same JSON value with every object's keys in reverse order (what a retry from another client may send). */
function reordered<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(reordered) as T;
  return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reordered(v)])) as T;
}

/** The attribute a dotted path names, walking objects only; undefined when absent. */
function at(attributes: Json, path: string): Json | undefined {
  let here: Json | undefined = attributes;
  for (const step of path.split('.')) {
    if (here === null || typeof here !== 'object' || Array.isArray(here) || !Object.hasOwn(here, step)) return undefined;
    here = here[step];
  }
  return here;
}

/** The sort order attribute-predicate.ts states: null < booleans < numbers < strings < arrays < objects < absent. */
function compareValues(a: Json | undefined, b: Json | undefined): number {
  const rank = (v: Json | undefined) => (v === undefined ? 6 : v === null ? 0 : typeof v === 'boolean' ? 1 : typeof v === 'number' ? 2
    : typeof v === 'string' ? 3 : Array.isArray(v) ? 4 : 5);
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  const [x, y] = typeof a === 'string' ? [a, b as string] : [canonical(a), canonical(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

interface Predicate { path: string; op: string; value?: Json }
interface FindQuery { type: string; where?: Predicate[]; order_by?: { path: string; desc?: boolean } }

function holds(value: Json | undefined, p: Predicate): boolean {
  if (p.op === 'exists') return (value !== undefined) === (p.value ?? true);
  if (value === undefined) return false;
  switch (p.op) {
    case 'eq': return canonical(value) === canonical(p.value);
    case 'ne': return canonical(value) !== canonical(p.value);
    case 'in': return (p.value as Json[]).some((v) => canonical(v) === canonical(value));
    default: {
      if (typeof value !== typeof p.value || (typeof value !== 'number' && typeof value !== 'string')) return false;
      const c = compareValues(value, p.value);
      return p.op === 'lt' ? c < 0 : p.op === 'lte' ? c <= 0 : p.op === 'gt' ? c > 0 : c >= 0;
    }
  }
}

/** Ids of the objects object_find must return, in order. */
function findModel(objects: ReadonlyMap<string, ModelObject>, q: FindQuery): string[] {
  const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const ids = [...objects].filter(([, o]) => o.type === q.type && (q.where ?? []).every((p) => holds(at(o.attributes, p.path), p))).map(([id]) => id);
  const order = q.order_by;
  if (!order) return ids.sort(byId);
  const sign = order.desc ? -1 : 1;
  return ids.sort((a, b) => sign * compareValues(at(objects.get(a)!.attributes, order.path), at(objects.get(b)!.attributes, order.path)) || byId(a, b));
}

interface NeighborsQuery { id: string; direction?: 'out' | 'in' | 'both'; kinds?: string[]; depth?: number; limit?: number }

/** Breadth-first: every object within depth hops with its distance, and every relation walked from an object nearer than depth. */
function neighborsModel(m: Model, q: NeighborsQuery): { nodes: Map<string, { type: string; depth: number }>; edges: Set<string> } {
  const direction = q.direction ?? 'out';
  const distance = new Map([[q.id, 0]]);
  const edges = new Set<string>();
  let frontier = [q.id];
  for (let depth = 1; depth <= (q.depth ?? 1); depth++) {
    const next: string[] = [];
    for (const id of frontier) {
      for (const r of m.relations.values()) {
        if (q.kinds && q.kinds.length > 0 && !q.kinds.includes(r.kind)) continue;
        if (!((direction !== 'in' && r.src === id) || (direction !== 'out' && r.dst === id))) continue;
        edges.add(relationKey(r));
        const other = r.src === id ? r.dst : r.src;
        if (!distance.has(other)) {
          distance.set(other, depth);
          next.push(other);
        }
      }
    }
    frontier = next;
  }
  distance.delete(q.id);
  return { nodes: new Map([...distance].map(([id, depth]) => [id, { type: m.objects.get(id)!.type, depth }])), edges };
}

// ---- the operations

const fixedIds = ['a', 'a.b', 'a0', 'B', 'c:1'];
const objectTypes = ['note', 'notes', 'strict'];
const relationKinds = ['rel', 'rel.x'];
const attributeKeys = ['n', 's', 'o', 'tag', 't'];
const paths = ['n', 's', 'o', 'o.x', 'tag', 't', 't.k', 'missing'];

/**
 * A value of which two fit attributesBytesMax and three do not; a few objects holding it fill a
 * page's bytes (pageItemsBytesMax) before its count.
 */
const bigValue = 'X'.repeat(Math.floor(attributesBytesMax / 2.5));
/** What a stored object row carries besides its id, type and attributes (times, subjects, version). */
const rowColumnsBytesMax = 256;
/** Sort values longer than a find cursor carries (cursorSortValueBytesMax): it carries their digest. */
const longValues = ['L'.repeat(cursorSortValueBytesMax) + 'a', 'L'.repeat(cursorSortValueBytesMax) + 'b'];
const scalar: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -3, max: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(1.5, -0.5) },
  { weight: 4, arbitrary: fc.constantFrom('', 'a', 'b', 'ab', 'abcd', 'é') },
  { weight: 1, arbitrary: fc.constantFrom(...longValues) },
  { weight: 2, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
);
const value: fc.Arbitrary<Json> = fc.oneof(
  { weight: 5, arbitrary: scalar },
  { weight: 1, arbitrary: fc.array(scalar, { maxLength: 2 }) },
  { weight: 2, arbitrary: fc.record({ x: scalar, k: scalar }, { requiredKeys: [] }) },
);
const attrs: fc.Arbitrary<Attrs> = fc.dictionary(fc.constantFrom(...attributeKeys),
  fc.oneof({ weight: 30, arbitrary: value }, { weight: 1, arbitrary: fc.constant(bigValue) }), { maxKeys: 4 });
const predicate: fc.Arbitrary<Predicate> = fc.oneof(
  fc.record({ path: fc.constantFrom(...paths), op: fc.constantFrom('eq', 'ne'), value }),
  fc.record({ path: fc.constantFrom(...paths), op: fc.constant('in'), value: fc.array(value, { maxLength: 3 }) }),
  fc.record({ path: fc.constantFrom(...paths), op: fc.constantFrom('lt', 'lte', 'gt', 'gte'), value: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom('a', 'b')) }),
  fc.record({ path: fc.constantFrom(...paths), op: fc.constant('exists'), value: fc.boolean() }, { requiredKeys: ['path', 'op'] }),
);
const findQuery: fc.Arbitrary<FindQuery> = fc.record({
  type: fc.constantFrom(...objectTypes),
  where: fc.array(predicate, { maxLength: 2 }),
  order_by: fc.record({ path: fc.constantFrom(...paths), desc: fc.boolean() }, { requiredKeys: ['path'] }),
}, { requiredKeys: ['type'] });

/** Index into the ids known so far (fixed + generated), taken modulo their number. */
const idRef = fc.nat(63);
const who = fc.constantFrom<Who>(0, 1);
const key = fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('k1', 'k2', 'k3') });
/** expected_version: omitted, the current version, a wrong one, or 0 (create-only; invalid for patch and delete). */
const expected = fc.constantFrom('none', 'none', 'current', 'off', 'zero');

const writeOp = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('put' as const), id: fc.option(idRef, { nil: undefined, freq: 6 }), type: fc.constantFrom(...objectTypes), attributes: attrs, expected, key, who }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('patch' as const), id: idRef, set: fc.option(attrs, { nil: undefined }),
      unset: fc.option(fc.array(fc.constantFrom(...attributeKeys), { maxLength: 2 }), { nil: undefined }), expected, key, who,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), id: idRef, expected, key, who }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('link' as const), src: idRef, rel: fc.constantFrom(...relationKinds), dst: idRef, key, who }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unlink' as const), src: idRef, rel: fc.constantFrom(...relationKinds), dst: idRef, key, who }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('type' as const), name: fc.constantFrom('note', 'strict'), schema: fc.constantFrom(...schemaNames),
      description: fc.option(fc.constant('d'), { nil: undefined }), reversed: fc.boolean(), key, who,
    }),
  },
);
type WriteOp = typeof writeOp extends fc.Arbitrary<infer T> ? T : never;

const op = fc.oneof(
  { weight: 18, arbitrary: writeOp },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('retry' as const), pick: fc.nat(), alter: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), reopen: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('burst' as const), writes: fc.array(writeOp, { minLength: 2, maxLength: 5 }), readAfter: fc.nat(), readId: idRef, snapshotAfter: fc.option(fc.nat(), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('walk' as const), query: findQuery, limit: fc.integer({ min: 1, max: 3 }), write: writeOp }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** What each step reads back besides every object: one find, one neighbourhood, one history, one as-of. */
const probe = fc.record({
  find: findQuery,
  findLimit: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  root: idRef,
  neighbors: fc.record({
    direction: fc.constantFrom('out', 'in', 'both'),
    kinds: fc.subarray(relationKinds),
    depth: fc.integer({ min: 1, max: 4 }),
    limit: fc.integer({ min: 1, max: 6 }),
  }, { requiredKeys: [] }),
  history: idRef,
  historyLimit: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  images: fc.boolean(),
  asOfId: idRef,
  asOfAt: fc.nat(),
});
type Probe = typeof probe extends fc.Arbitrary<infer T> ? T : never;

// ---- running it

/** A write the model planned: the error it must fail with, or the result it must return and how it changes the model. */
type Plan = { error: string } | { result: Record<string, unknown>; apply(result: Record<string, any>): void };
interface Page { readonly items: Record<string, any>[]; readonly next?: string }
/** One write tool call: its JSON arguments, and the model's plan for it (or the error its arguments get before any key is looked up). */
interface WriteCall { tool: string; args: Record<string, unknown>; who: Who; key: string | undefined; early?: string; plan: () => Plan }

function describeCall(call: WriteCall): string {
  return `${call.tool} ${JSON.stringify(call.args)} by ${callers[call.who]!.subject}${call.key ? ` key ${call.key}` : ''}`;
}

class Run {
  constructor(readonly f: Fixture, readonly m: Model) {}

  attempt(tool: string, args: unknown, who: Who = 0): Promise<Outcome> {
    return attemptTool(this.f, tool, args, callers[who]);
  }

  async expectError(tool: string, args: unknown, code: string, message?: RegExp): Promise<void> {
    const got = await this.attempt(tool, args);
    expect(got, `${tool} ${JSON.stringify(args)}`).toMatchObject({ ok: false, code, ...(message ? { message: expect.stringMatching(message) } : {}) });
  }

  async read(tool: string, args: unknown): Promise<Record<string, any>> {
    const got = await this.attempt(tool, args);
    if (!got.ok) throw new Error(`${tool} ${JSON.stringify(args)} failed: ${got.code} ${got.message}`);
    return got.value;
  }

  /** First offset the log still holds: older versions live only in snapshots. */
  logFirst(): number {
    return (this.f.memory.store as Store).logFirstOffset;
  }

  /** A write as one call alone: its outcome as the model says, and nothing written unless it succeeded. */
  async write(call: WriteCall): Promise<void> {
    const before = this.f.mark();
    const got = await this.send(call);
    if (this.expectOutcome(call, got).wrote) expect(got.ok && got.value['offset'], `${describeCall(call)}: its commit offset`).toBe(this.f.memory.store.lastOffset);
    else expect(this.f.mark(), `${describeCall(call)} wrote nothing`).toEqual(before);
  }

  send(call: WriteCall): Promise<Outcome> {
    return this.attempt(call.tool, call.key === undefined ? call.args : { ...call.args, idempotency_key: call.key }, call.who);
  }

  /**
   * Check one write's outcome against the model (as it stands after the calls before it) and
   * apply it. Says whether the call wrote (a new offset) and the offset whose state its answer
   * reveals, which must be durable by the time it comes: its own, its key's first call's, or
   * the state it was refused on (none for arguments refused as such).
   */
  expectOutcome(call: WriteCall, got: Outcome, logFirstBefore = this.logFirst()): { wrote: boolean; reveals?: number } {
    const what = describeCall(call);
    const slot = `${call.tool}\u0000${call.who}\u0000${call.key}`;
    const prior = call.key === undefined ? undefined : this.m.keys.get(slot);
    if (call.early !== undefined) {
      expect(got, what).toMatchObject({ ok: false, code: call.early });
      return { wrote: false };
    }
    if (prior) {
      // The first call's arguments are compared while the log holds its frame; after that the key replays.
      // (A snapshot taken meanwhile may drop the frame while the call runs: then either answer is right.)
      const offset = prior.result['offset'] as number;
      const replay = { ok: true, value: prior.result };
      const conflict = expect.objectContaining({ ok: false, code: 'conflict' });
      if (prior.args === canonical(call.args) || offset < logFirstBefore) expect(got, `${what}: a retry`).toEqual(replay);
      else if (offset >= this.logFirst()) expect(got, `${what}: the key's first call had other arguments`).toEqual(conflict);
      else expect([replay, conflict], `${what}: its first call's frame dropped meanwhile`).toContainEqual(got);
      return { wrote: false, reveals: offset };
    }
    const planned = call.plan();
    if ('error' in planned) {
      expect(got, what).toMatchObject({ ok: false, code: planned.error });
      return { wrote: false, reveals: this.m.lastOffset };
    }
    expect(got, what).toEqual({ ok: true, value: { ...planned.result, offset: expect.any(Number) } });
    const result = (got as { value: Record<string, any> }).value;
    expect(result['offset'], `${what}: its commit offset`).toBeGreaterThan(this.m.lastOffset);
    planned.apply(result);
    this.m.lastOffset = result['offset'];
    if (call.key !== undefined) {
      this.m.keys.set(slot, { args: canonical(call.args), result });
      this.m.keyed.push(call);
    }
    return { wrote: true, reveals: result['offset'] };
  }

  id(ref: number): string {
    const ids = this.m.ids();
    return ids[ref % ids.length]!;
  }

  /**
   * The tool call an operation makes (ids and expected versions taken from the model now) and
   * the model's plan for it, made when its turn comes (after the calls before it).
   */
  resolve(o: WriteOp): WriteCall {
    const m = this.m;
    const subject = callers[o.who]!.subject;
    const call = (tool: string, args: Record<string, unknown>, plan: () => Plan, early?: string): WriteCall =>
      ({ tool, args, who: o.who, key: o.key, plan, ...(early ? { early } : {}) });
    switch (o.kind) {
      case 'put': {
        const id = o.id === undefined ? undefined : this.id(o.id);
        const now = id === undefined ? 0 : m.objects.get(id)?.version ?? 0;
        const expectedVersion = { none: undefined, current: now, off: now + 1, zero: 0 }[o.expected];
        const args = { ...(id === undefined ? {} : { id }), type: o.type, attributes: o.attributes, ...(expectedVersion === undefined ? {} : { expected_version: expectedVersion }) };
        return call('object_put', args, () => {
          if (tooBig(o.attributes)) return { error: 'limit_exceeded' };
          if (id === undefined && (expectedVersion ?? 0) > 0) return { error: 'invalid_argument' };
          if (expectedVersion !== undefined && id !== undefined && expectedVersion !== (m.objects.get(id)?.version ?? 0)) return { error: 'version_conflict' };
          if (!m.accepts(o.type, o.attributes)) return { error: 'invalid_argument' };
          return {
            result: { id: id ?? expect.stringMatching(/^obj_[0-9a-f]{16}$/), version: id === undefined ? 1 : m.nextVersion(id) },
            apply: (r) => {
              if (id === undefined) {
                expect(m.versions.has(r['id']), `generated id ${r['id']} is new`).toBe(false);
                m.generated.push(r['id']);
              }
              m.write(r['id'], 'put', subject, r['offset'], { type: o.type, attributes: o.attributes });
            },
          };
        });
      }
      case 'patch':
      case 'delete': {
        const id = this.id(o.id);
        const now = m.objects.get(id)?.version ?? 1;
        const expectedVersion = { none: undefined, current: now, off: now + 1, zero: 0 }[o.expected];
        const guard = expectedVersion === undefined ? {} : { expected_version: expectedVersion };
        // expected_version is at least 1 here: 0 is refused with the arguments, before any key is looked up.
        const early = expectedVersion === 0 ? 'invalid_argument' : undefined;
        if (o.kind === 'delete') {
          return call('object_delete', { id, ...guard }, () => {
            const current = m.objects.get(id);
            if (!current) return { error: 'not_found' };
            if (expectedVersion !== undefined && expectedVersion !== current.version) return { error: 'version_conflict' };
            const doomed = m.touching(id);
            return {
              result: { version: current.version + 1, relations_removed: doomed.length },
              apply: (r) => {
                for (const rel of doomed) m.relations.delete(relationKey(rel));
                m.write(id, 'delete', subject, r['offset']);
              },
            };
          }, early);
        }
        const set = o.set ?? {};
        const unset = o.unset ?? [];
        return call('object_patch', { id, ...(o.set ? { set } : {}), ...(o.unset ? { unset } : {}), ...guard }, () => {
          if (Object.keys(set).length + unset.length === 0 || unset.some((k) => Object.hasOwn(set, k))) return { error: 'invalid_argument' };
          const current = m.objects.get(id);
          if (!current) return { error: 'not_found' };
          if (expectedVersion !== undefined && expectedVersion !== current.version) return { error: 'version_conflict' };
          const attributes: Attrs = { ...current.attributes, ...set };
          for (const k of unset) delete attributes[k];
          if (tooBig(attributes)) return { error: 'limit_exceeded' };
          if (!m.accepts(current.type, attributes)) return { error: 'invalid_argument' };
          return {
            result: { id, version: current.version + 1 },
            apply: (r) => void m.write(id, 'patch', subject, r['offset'], { type: current.type, attributes }),
          };
        }, early);
      }
      case 'link':
      case 'unlink': {
        const rel = { src: this.id(o.src), kind: o.rel, dst: this.id(o.dst) };
        return call(`object_${o.kind}`, rel, () => {
          const present = m.relations.has(relationKey(rel));
          if (o.kind === 'unlink') {
            return present ? { result: {}, apply: () => void m.relations.delete(relationKey(rel)) } : { error: 'not_found' };
          }
          if (!m.objects.has(rel.src) || !m.objects.has(rel.dst)) return { error: 'not_found' };
          return { result: { created: !present }, apply: () => void m.relations.set(relationKey(rel), rel) };
        });
      }
      case 'type': {
        const schema = o.reversed ? reordered(schemas[o.schema].schema) : schemas[o.schema].schema;
        const args = { name: o.name, schema, ...(o.description === undefined ? {} : { description: o.description }) };
        return call('type_define', args, () => {
          const existing = m.types.get(o.name);
          const description = o.description ?? '';
          if (existing && existing.schema === o.schema && existing.description === description) {
            return { result: { name: o.name, version: existing.version, changed: false }, apply: () => undefined };
          }
          const ofType = [...m.objects.values()].filter((obj) => obj.type === o.name);
          if (!ofType.every((obj) => schemas[o.schema].accepts(obj.attributes))) return { error: 'invalid_argument' };
          const version = (existing?.version ?? 0) + 1;
          return { result: { name: o.name, version, changed: true }, apply: () => void m.types.set(o.name, { version, schema: o.schema, description }) };
        });
      }
    }
  }

  /** Call a keyed call again: the same arguments (keys in another order), or other ones under the same key. */
  async retry(pick: number, alter: boolean): Promise<void> {
    const first = this.m.keyed[pick % Math.max(1, this.m.keyed.length)];
    if (!first) return;
    const args = alter ? otherArguments(first.tool, first.args) : reordered(first.args);
    await this.write({ ...first, args, plan: () => { throw new Error('a key already used never runs its tool again'); } });
  }

  /**
   * Writes sent together, none awaited before the next is sent (as concurrent tools/calls
   * arrive), with object_get and an object_find page sent between them: each answers as the
   * model after the calls sent before it, whatever batches the group commit makes of them, and
   * not before the state it was computed on is durable (a refusal reveals that state too).
   */
  async burst(ops: readonly WriteOp[], readAfter: number, readId: number, snapshotAfter: number | undefined): Promise<void> {
    const store = this.f.memory.store;
    // The durable offset when an answer came; for a read, also the last offset applied when it ran (what it saw).
    const answered = (outcome: Promise<Outcome>, seen = -1) => outcome.then((o) => ({ o, seen, durable: store.durableOffset }));
    const calls = ops.map((o) => this.resolve(o));
    const id = this.id(readId);
    const asOf = this.m.versions.get(id)?.[0]?.offset ?? 0;
    const logFirstBefore = this.logFirst();
    const sent: ReturnType<typeof answered>[] = [];
    let reads: ReturnType<typeof answered>[] = [];
    let snapshot: { at: number; taken: Promise<{ offset: number }> } | undefined;
    for (const [i, call] of calls.entries()) {
      sent.push(answered(this.send(call)));
      if (i === readAfter % calls.length) {
        reads = [
          this.attempt('object_get', { id }),
          this.attempt('object_find', { type: 'note' }),
          this.attempt('object_history', { id, include_attributes: true }),
          this.attempt('object_get_as_of', { id, offset: asOf }),
        ].map((r) => answered(r, store.lastOffset));
      }
      if (snapshotAfter !== undefined && i === snapshotAfter % calls.length) {
        snapshot = { at: store.lastOffset, taken: store.snapshot() };
      }
    }
    const outcomes = await Promise.all(sent);
    // A snapshot taken while writes are in flight holds the state as of its call; the log the rest.
    if (snapshot) this.snapshotTaken(snapshot.at, (await snapshot.taken).offset);
    for (const [i, call] of calls.entries()) {
      const { o, durable } = outcomes[i]!;
      const { reveals } = this.expectOutcome(call, o, logFirstBefore);
      if (reveals !== undefined) expect(durable, `${describeCall(call)}: answered only once offset ${reveals}, whose state it tells, was durable`).toBeGreaterThanOrEqual(reveals);
      if (i !== readAfter % calls.length) continue;
      const [get, find, history, asOfRead] = await Promise.all(reads);
      for (const r of [get!, find!, history!, asOfRead!]) expect(r.durable, 'a read answered only once the state it saw was durable').toBeGreaterThanOrEqual(r.seen);
      if (this.m.versions.has(id)) {
        const wanted = this.historyWanted(id, true, logFirstBefore);
        const page = history!.o.ok ? history!.o.value : {};
        expect(page['versions'], `object_history ${id} sent after write ${i} of a burst`).toEqual(wanted.slice(0, page['next_cursor'] ? page['versions'].length : wanted.length));
      } else {
        expect(history!.o).toMatchObject({ ok: false, code: 'not_found' });
      }
      expect(asOfRead!.o, `object_get_as_of ${id} @${asOf} sent after write ${i} of a burst`).toEqual(this.asOfWanted(id, asOf, logFirstBefore));
      const obj = this.m.objects.get(id);
      expect(get!.o, `object_get ${id} sent after write ${i} of a burst`).toEqual(obj ? { ok: true, value: { id, ...obj } } : expect.objectContaining({ ok: false, code: 'not_found' }));
      const want = findModel(this.m.objects, { type: 'note' }).map((x) => ({ id: x, ...this.m.objects.get(x) }));
      expect(find!.o, `object_find sent after write ${i} of a burst`).toEqual({ ok: true, value: want.length > 50 ? expect.anything() : { objects: want } });
    }
  }

  // ---- what the read tools must say

  async checkObjects(): Promise<void> {
    for (const id of this.m.ids()) {
      const o = this.m.objects.get(id);
      if (o) expect(await this.read('object_get', { id }), `object_get ${id}`).toEqual({ id, ...o });
      else await this.expectError('object_get', { id }, 'not_found');
    }
    expect(this.f.memory.store.lastOffset, 'the store\'s last offset').toBe(this.m.lastOffset);
  }

  async checkTypes(): Promise<void> {
    for (const name of ['note', 'strict']) {
      const t = this.m.types.get(name);
      if (t) expect(await this.read('type_get', { name })).toEqual({ name, version: t.version, description: t.description, schema: schemas[t.schema].schema });
      else await this.expectError('type_get', { name }, 'not_found');
    }
    const names: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.read('type_list', { limit: 1, ...(cursor ? { cursor } : {}) });
      names.push(...page['types'].map((t: { name: string }) => t.name));
      cursor = page['next_cursor'];
    } while (cursor);
    expect(names).toEqual([...this.m.types.keys()].sort());
  }

  /** The pages of a find from the cursor given (or the first) to the last. */
  async findPages(q: FindQuery, limit: number | undefined, cursor?: string): Promise<Page[]> {
    const pages: Page[] = [];
    do {
      const page = await this.read('object_find', { ...q, ...(limit ? { limit } : {}), ...(cursor ? { cursor } : {}) });
      pages.push({ items: page['objects'], next: page['next_cursor'] });
      cursor = page['next_cursor'];
      expect(pages.length, 'pages of object_find').toBeLessThan(100);
    } while (cursor);
    return pages;
  }

  async checkFind(q: FindQuery, limit: number | undefined): Promise<void> {
    const want = findModel(this.m.objects, q).map((id) => ({ id, ...this.m.objects.get(id) }));
    expectPages(`object_find ${JSON.stringify(q)}`, await this.findPages(q, limit), want, limit ?? pageSizeDefault);
  }

  async checkNeighbors(q: NeighborsQuery): Promise<void> {
    if (!this.m.objects.has(q.id)) return this.expectError('object_neighbors', q, 'not_found');
    const got = await this.read('object_neighbors', q);
    const want = neighborsModel(this.m, q);
    const what = `object_neighbors ${JSON.stringify(q)}`;
    const nodesMax = q.limit ?? 50;
    const edgesMax = Math.min(nodesMax * 4, 800);
    const nodes = got['nodes'] as { id: string; type: string; depth: number }[];
    const edges = (got['edges'] as Relation[]).map(relationKey);
    expect(new Set(edges).size, `${what}: edges once each`).toBe(edges.length);
    expect(new Set(nodes.map((n) => n.id)).size, `${what}: nodes once each`).toBe(nodes.length);
    if (want.nodes.size <= nodesMax && want.edges.size <= edgesMax) {
      expect(got['truncated'], what).toBe(false);
      expect(new Map(nodes.map(({ id, ...n }) => [id, n])), what).toEqual(want.nodes);
      expect(new Set(edges), what).toEqual(want.edges);
      return;
    }
    // Truncated: a prefix of the breadth-first walk, each node at its distance, within the bounds.
    expect(got['truncated'], what).toBe(true);
    expect(nodes.length).toBeLessThanOrEqual(nodesMax);
    expect(edges.length).toBeLessThanOrEqual(edgesMax);
    for (const n of nodes) expect(want.nodes.get(n.id), `${what}: node ${n.id}`).toEqual({ type: n.type, depth: n.depth });
    for (const e of edges) expect(want.edges.has(e), `${what}: edge ${e}`).toBe(true);
    const deepest = Math.max(0, ...nodes.map((n) => n.depth));
    const nearer = [...want.nodes].filter(([, n]) => n.depth < deepest).map(([id]) => id);
    expect(nodes.map((n) => n.id), `${what}: every node nearer than the deepest returned`).toEqual(expect.arrayContaining(nearer));
    expect(nodes.map((n) => n.depth), `${what}: breadth-first`).toEqual([...nodes.map((n) => n.depth)].sort((a, b) => a - b));
  }

  /**
   * A version's attributes as object_history shows them: current, from the log, or gone with the
   * log. A snapshot taken while the read ran (logFirstBefore: the log's start before it) may drop
   * a frame between the read's two steps: then either is right.
   */
  images(id: string, v: ModelVersion, logFirstBefore = this.logFirst()): Record<string, unknown>[] {
    if (v.op === 'delete') return [{}];
    if (this.m.objects.get(id)?.version === v.version) return [{ type: v.type, attributes: v.attributes, image: 'current' }];
    const log = { type: v.type, attributes: v.attributes, image: 'log' };
    if (v.offset >= this.logFirst()) return [log];
    return v.offset < logFirstBefore ? [{ image: 'gone' }] : [log, { image: 'gone' }];
  }

  /** The entries object_history must list for id, newest first. */
  historyWanted(id: string, images: boolean, logFirstBefore?: number): unknown[] {
    return [...this.m.versions.get(id)!].reverse().map((v) => {
      const entry = { version: v.version, offset: v.offset, op: v.op, reducer: v.reducer, caller: v.caller, at_ms: expect.any(Number) };
      const shown = (images ? this.images(id, v, logFirstBefore) : [{}]).map((image) => ({ ...entry, ...image }));
      return shown.length === 1 ? shown[0] : expect.toBeOneOf(shown);
    });
  }

  async checkHistory(id: string, images: boolean, limit: number | undefined): Promise<void> {
    const versions = this.m.versions.get(id);
    if (!versions) return this.expectError('object_history', { id }, 'not_found');
    const pages: Page[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.read('object_history', { id, ...(images ? { include_attributes: true } : {}), ...(limit ? { limit } : {}), ...(cursor ? { cursor } : {}) });
      expect(page['id']).toBe(id);
      expect(page['trimmed']).toBe(false);
      pages.push({ items: page['versions'], next: page['next_cursor'] });
      cursor = page['next_cursor'];
      expect(pages.length, 'pages of object_history').toBeLessThanOrEqual(versions.length);
    } while (cursor);
    const want = this.historyWanted(id, images);
    // With images a page holds at most historyImagesPerPageMax versions.
    expectPages(`object_history ${id}${images ? ' with images' : ''}`, pages, want, images ? Math.min(limit ?? historyImagesPerPageMax, historyImagesPerPageMax) : limit ?? pageSizeDefault);
    for (const e of pages.flatMap((p) => p.items)) this.sameAtMs(id, e['version'], e['at_ms']);
  }

  sameAtMs(id: string, version: number, atMs: number): void {
    const k = `${id}@${version}`;
    const first = this.m.atMs.get(k);
    if (first === undefined) this.m.atMs.set(k, atMs);
    else expect(atMs, `at_ms of ${k}`).toBe(first);
  }

  async checkAsOf(id: string, offset: number): Promise<void> {
    const got = await this.attempt('object_get_as_of', { id, offset });
    expect(got, `object_get_as_of ${id} @${offset}`).toEqual(this.asOfWanted(id, offset));
    if (got.ok) this.sameAtMs(id, got.value['version'], got.value['at_ms']);
  }

  /** What object_get_as_of must answer (one of, when a snapshot ran meanwhile: see images). */
  asOfWanted(id: string, offset: number, logFirstBefore?: number): unknown {
    const refused = (code: string, message: RegExp) => expect.objectContaining({ ok: false, code, message: expect.stringMatching(message) });
    if (offset > this.m.lastOffset) return refused('invalid_argument', /beyond/);
    const v = this.m.versions.get(id)?.filter((x) => x.offset <= offset).at(-1);
    if (!v) return refused('not_found', /did not exist/);
    if (v.op === 'delete') return refused('not_found', /deleted at offset/);
    const answers = this.images(id, v, logFirstBefore).map((image) => (image['image'] === 'gone'
      ? refused('not_found', /no longer in the log/)
      : { ok: true, value: { id, type: v.type, attributes: v.attributes, version: v.version, offset: v.offset, at_ms: expect.any(Number) } }));
    return answers.length === 1 ? answers[0] : expect.toBeOneOf(answers);
  }

  async checkStep(p: Probe): Promise<void> {
    await this.checkObjects();
    await this.checkFind(p.find, p.findLimit);
    await this.checkNeighbors({ id: this.id(p.root), ...p.neighbors });
    await this.checkHistory(this.id(p.history), p.images, p.historyLimit);
    const offsets = [...this.m.versions.values()].flat().map((v) => v.offset);
    const offset = offsets.length === 0 ? this.m.lastOffset : offsets[p.asOfAt % offsets.length]! - (p.asOfAt % 2);
    await this.checkAsOf(this.id(p.asOfId), Math.max(0, offset));
  }

  /** Everything, for every id: after a reopen and at the end. */
  async checkAll(): Promise<void> {
    await this.checkObjects();
    await this.checkTypes();
    for (const type of objectTypes) {
      await this.checkFind({ type }, 2);
      await this.checkFind({ type, order_by: { path: 'n' } }, 1);
      await this.checkFind({ type, order_by: { path: 's', desc: true } }, 3);
    }
    for (const id of this.m.ids()) {
      await this.checkNeighbors({ id, direction: 'both', depth: 4 });
      await this.checkHistory(id, true, 2);
      for (const v of this.m.versions.get(id) ?? []) {
        await this.checkAsOf(id, v.offset);
        if (v.offset > 0) await this.checkAsOf(id, v.offset - 1);
      }
    }
    await this.checkAsOf('a', this.m.lastOffset + 1);
    // The log keeps what the older of the two kept snapshots does not hold.
    expect(this.logFirst(), 'the log since the older kept snapshot').toBeLessThanOrEqual((this.m.snapshots.at(-2) ?? -1) + 1);
  }

  /**
   * A find walked while a write lands between its first page and the rest: every object the
   * write left alone that matches before and after comes once, in order; only the written
   * object may be missed or repeated.
   */
  async walkAcross(q: FindQuery, limit: number, write: WriteOp): Promise<void> {
    const before = new Map(this.m.objects);
    const first = await this.read('object_find', { ...q, limit });
    for (const o of first['objects']) expect(o).toEqual({ id: o.id, ...before.get(o.id) });
    await this.write(this.resolve(write));
    const after = this.m.objects;
    const untouched = (id: string) => before.get(id) === after.get(id);
    const matchedBefore = findModel(before, q);
    const matchedAfter = findModel(after, q);
    const what = `object_find ${JSON.stringify(q)} limit ${limit} across ${JSON.stringify(write)}`;
    // A page that ended at a sort value too long to carry resumes at its object: if that was written, start again.
    const last = first['objects'].at(-1) as { id: string } | undefined;
    const lastValue = last && q.order_by ? at(before.get(last.id)!.attributes, q.order_by.path) : undefined;
    if (first['next_cursor'] && lastValue !== undefined && Buffer.byteLength(JSON.stringify(lastValue)) > cursorSortValueBytesMax
      && !(matchedAfter.includes(last!.id) && canonical(at(after.get(last!.id)!.attributes, q.order_by!.path)) === canonical(lastValue))) {
      return this.expectError('object_find', { ...q, limit, cursor: first['next_cursor'] }, 'invalid_argument', /start again|has changed/);
    }
    const rest = first['next_cursor'] ? await this.findPages(q, limit, first['next_cursor']) : [];
    for (const o of rest.flatMap((p) => p.items)) expect(o, `${what}: a later page`).toEqual({ id: o.id, ...after.get(o.id) });
    const seen = [...first['objects'], ...rest.flatMap((p) => p.items)].map((o: { id: string }) => o.id);
    const stable = matchedAfter.filter((id) => untouched(id) && matchedBefore.includes(id));
    expect(seen.filter((id) => stable.includes(id)), what).toEqual(stable);
    for (const id of seen) expect(matchedBefore.includes(id) || matchedAfter.includes(id), `${what}: ${id} matched at some point`).toBe(true);
    const repeated = seen.filter((id, i) => seen.indexOf(id) !== i);
    for (const id of repeated) expect(untouched(id), `${what}: only a written object repeats (${id})`).toBe(false);
  }

  snapshotTaken(asked: number, offset: number): void {
    expect(offset, 'a snapshot holds the state at its call').toBe(asked);
    if (this.m.snapshots.at(-1) !== offset) this.m.snapshots.push(offset);
  }

  async run(o: Op): Promise<void> {
    switch (o.kind) {
      case 'retry':
        return this.retry(o.pick, o.alter);
      case 'reopen':
        await this.f.reopen();
        return this.checkAll();
      case 'snapshot': {
        this.snapshotTaken(this.m.lastOffset, (await this.f.memory.store.snapshot()).offset);
        if (o.reopen) await this.f.reopen();
        return this.checkAll();
      }
      case 'walk':
        return this.walkAcross(o.query, o.limit, o.write);
      case 'burst':
        return this.burst(o.writes, o.readAfter, o.readId, o.snapshotAfter);
      default:
        return this.write(this.resolve(o));
    }
  }
}

/**
 * Pages walked from first to last hold the items wanted, each once, in order; a page before the
 * last holds `limit` items, or as many as pageItemsBytesMax allows: the next would not have fit
 * (bytes counted as returned; a find counts its rows with the columns it does not return).
 */
function expectPages(what: string, pages: readonly Page[], want: readonly unknown[], limit: number): void {
  let at = 0;
  for (const [i, page] of pages.entries()) {
    expect(page.items, `${what}: page ${i}`).toEqual(want.slice(at, at + page.items.length));
    at += page.items.length;
    const next = pages[i + 1]?.items[0];
    if (page.next === undefined) {
      expect(at, `${what}: the last page`).toBe(want.length);
    } else if (page.items.length < limit) {
      expect(next, `${what}: a page ends early only when more follow`).toBeDefined();
      const bytes = [...page.items, next].reduce<number>((sum, item) => sum + Buffer.byteLength(JSON.stringify(item)) + 1, 0);
      expect(bytes, `${what}: page ${i} holds ${page.items.length} of ${limit}, so the next would not fit its bytes`).toBeGreaterThan(pageItemsBytesMax - rowColumnsBytesMax * (page.items.length + 1));
    }
  }
}

/** Arguments a retry must not be answered for as if they were the first call's. */
function otherArguments(tool: string, args: Record<string, any>): Record<string, unknown> {
  switch (tool) {
    case 'object_put': return { ...args, attributes: { ...args['attributes'], retried: true } };
    case 'object_patch': return { ...args, set: { ...args['set'], retried: true } };
    case 'object_delete': {
      const { expected_version: given, ...rest } = args;
      return given === undefined ? { ...rest, expected_version: 1 } : rest;
    }
    case 'type_define': return { ...args, description: args['description'] === undefined ? 'other' : `${args['description']}!` };
    default: return { ...args, kind: args['kind'] === 'rel' ? 'rel.x' : 'rel' };
  }
}

/** A failure shrinks for at most this long, then is reported as far as it got (a whole run takes about a fifth of it). */
const shrinkingTimeMax = 120_000;

describe('objects tools against a model', () => {
  test('random writes, retries, reopens and snapshots leave get, find, neighbours, history and as-of equal to the model', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(op, probe), { minLength: 1, maxLength: 40, size: 'max' }), async (steps) => {
      // Small segments: a few snapshots let the log drop the oldest versions' frames.
      const f = await openFixture({ segmentBytesMax: 2048 });
      try {
        const run = new Run(f, new Model(f.memory.store.lastOffset));
        for (const [o, p] of steps) {
          await run.run(o);
          await run.checkStep(p);
        }
        await f.reopen();
        await run.checkAll();
      } finally {
        await f.close();
      }
    }), { numRuns: 40, interruptAfterTimeLimit: shrinkingTimeMax });
  }, shrinkingTimeMax * 2);
});
