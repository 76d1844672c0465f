/**
 * Property: any sequence of the chat (threads removed too), AR, agent-session and BPMN tools, called by name with JSON
 * arguments by two callers, some with idempotency keys (retried with the same or other
 * arguments), some refused on purpose (bad arguments, sizes past their limits, absent ids,
 * wrong states), some sent together without waiting, with close + reopen and snapshot + reopen
 * between them, leaves every read answering what a plain model says, after every step:
 * chat_messages_list (asc and desc, after_seq, every page walked), chat_threads_list, ar_surface_get and
 * ar_history_list (paged, the newest arHistoryPerSurfaceMax; surfaces removed and observed
 * again too), ar_surfaces_list, session_get, sessions_list, bpmn_instance_get, bpmn_instances_list,
 * the run outbox, and the memory:// resources (resources/list paged, each read equal to its
 * tool's answer), and every write is announced for the URI it changed (changedUris). A refused
 * call writes nothing; reopening gives the state hash it closed with. The store's clock is
 * fixed, so timestamps are part of the model.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Caller } from '../../storage/changes.js';
import { arHistoryPerSurfaceMax, arPayloadBytesMax } from '../../tools/ar.js';
import { instanceStates, taskResultBytesMax, variablesBytesMax } from '../../tools/bpmn.js';
import { messageContentCharsMax } from '../../tools/chat.js';
import { memoryCatalog } from '../../tools/index.js';
import { jsonBytes } from '../../tools/json-bytes.js';
import { sessionDetailsBytesMax, sessionStates } from '../../tools/sessions.js';
import { chatResourceMessagesMax, resourcesPageSize } from '../../resources/memory-catalog.js';
import { alice, attemptTool, bob, describeCall, openFixture, reopenChecked, WriteLedger, type Fixture, type Outcome, type PlannedCall } from './memory-fixture.js';

type Who = 0 | 1;
const callers: readonly Caller[] = [alice, bob];
/** The store's clock: every transaction's timestamp. */
const nowMs = 1_000_000;
type Json = Record<string, unknown>;

// ---- the model

interface Message { seq: number; role: string; author: string; content: string; at_ms: number }
interface Thread { title: string; messages: Message[] }
interface ArState { pose: number[]; anchors: Json[]; payload: Json; observed_at_ms: number }
interface Surface { latest: ArState; lastSeq: number; history: (ArState & { seq: number })[] }
interface Session { agent: string; title: string; state: string; outcome: string | null; details: Json; ended_at_ms: number | null }
interface Task { task: string; token: string; node: string; name: string; assignee: string | null; state: string; result: unknown }
interface Instance { definition: string; state: string; variables: Json; reason: string | null; ended_at_ms: number | null; tokens: Map<string, string>; tasks: Task[]; tokensMade: number }
interface Run { run_id: string; kind: string; definition: string; outcome: string; details: Json }

class Model extends WriteLedger {
  readonly threads = new Map<string, Thread>();
  readonly surfaces = new Map<string, Surface>();
  readonly sessions = new Map<string, Session>();
  readonly instances = new Map<string, Instance>();
  readonly outbox = new Map<string, Run>();

  /** The URI each resource has now, with what its read must say. */
  resources(): Map<string, unknown> {
    const out = new Map<string, unknown>();
    for (const [id, t] of this.threads) out.set(uri('chat', id), threadResource(id, t));
    for (const [id, s] of this.surfaces) out.set(uri('ar', id), surfaceView(id, s));
    for (const [id, s] of this.sessions) out.set(uri('sessions', id), sessionView(id, s));
    for (const [id, i] of this.instances) out.set(uri('bpmn', id), instanceView(id, i));
    return out;
  }
}

const uri = (kind: string, id: string) => `memory://${kind}/${encodeURIComponent(id)}`;
const byKey = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const madeNumber = (id: string) => Number(id.slice(id.lastIndexOf('_') + 1));

function threadResource(id: string, t: Thread): unknown {
  return { id, title: t.title, message_count: t.messages.length, created_at_ms: nowMs, messages: t.messages.slice(-chatResourceMessagesMax) };
}
function surfaceView(surface: string, s: Surface): unknown {
  return { surface, ...s.latest, observations: s.lastSeq };
}
function sessionView(session: string, s: Session): unknown {
  return { session, agent: s.agent, title: s.title, state: s.state, started_at_ms: nowMs, ended_at_ms: s.ended_at_ms, outcome: s.outcome, details: s.details };
}
function instanceView(instance: string, i: Instance): unknown {
  return {
    instance, definition: i.definition, state: i.state, variables: i.variables, started_at_ms: nowMs, ended_at_ms: i.ended_at_ms, reason: i.reason,
    // Listed in the order they were made: tok_2 before tok_10.
    tokens: [...i.tokens].sort(([a], [b]) => madeNumber(a) - madeNumber(b)).map(([token, node]) => ({ token, node })),
    tasks: [...i.tasks].sort((a, b) => madeNumber(a.task) - madeNumber(b.task)),
  };
}

// ---- the operations

const big = (bytes: number): Json => ({ blob: 'x'.repeat(bytes) });
/** A JSON object that fits the 16 KiB limits alone, not twice. */
const half = big(10_000);
const small = { a: 1, b: 'é' };
const pose = (x: number) => [x, 0, 0, 0, 0, 0, 1];

const who = fc.constantFrom<Who>(0, 1);
const key = fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('k1', 'k2') });
/** Index into the ids created so far; past them, an id that does not exist. */
const ref = fc.oneof({ weight: 6, arbitrary: fc.nat(1) }, { weight: 1, arbitrary: fc.nat(7) });
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
/** Mostly a value the tool takes, now and then one it must refuse. */
const mostly = <T>(valid: readonly T[], invalid: readonly T[]) => fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...valid) }, { weight: 1, arbitrary: fc.constantFrom(...invalid) });

const writeOp = fc.oneof(
  fc.record({ kind: fc.constant('thread' as const), who, key, title: maybe(mostly(['', 'Plan'], ['x'.repeat(257)])) }),
  fc.record({
    kind: fc.constant('append' as const), who, key, thread: ref,
    role: mostly(['user', 'assistant', 'system', 'tool'], ['wizard']),
    content: mostly(['', 'hi', '日本'], ['x'.repeat(messageContentCharsMax + 1)]),
    author: maybe(mostly(['claude'], [''])),
  }),
  fc.record({
    kind: fc.constant('observe' as const), who, key, surface: mostly(['s1', 's2', 'desk.9'], ['bad surface']),
    pose: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: -2, max: 2 }).map(pose) }, { weight: 1, arbitrary: fc.constant<number[]>([1, 2, 3]) }),
    observed: maybe(mostly([0, 100, 200], [-1])),
    anchors: maybe(fc.constantFrom<Json[]>([{ id: 'cup', label: 'cup' }], [{ id: 'a', pose: pose(1) }, { id: 'b' }])),
    payload: maybe(mostly([small], [big(arPayloadBytesMax + 1)])),
  }),
  fc.record({ kind: fc.constant('remove_surface' as const), who, key, surface: mostly(['s1', 's2', 'desk.9'], ['bad surface']) }),
  fc.record({ kind: fc.constant('remove_thread' as const), who, key, thread: ref }),
  fc.record({ kind: fc.constant('session_start' as const), who, key, agent: mostly(['fundi/planner'], ['bad agent']), title: maybe(fc.constant('T')), details: maybe(mostly([small, half], [big(sessionDetailsBytesMax + 1)])) }),
  fc.record({ kind: fc.constant('session_end' as const), who, key, session: ref, outcome: mostly(['completed', 'failed', 'cancelled'], ['exploded']), details: maybe(fc.constantFrom(small, half)) }),
  fc.record({ kind: fc.constant('bpmn_start' as const), who, key, definition: mostly(['invoice:2'], ['has space']), start: mostly(['start'], ['1bad']), variables: maybe(mostly([small, half], [big(variablesBytesMax + 1)])) }),
  fc.record({
    kind: fc.constant('move' as const), who, key, instance: ref, token: maybe(fc.constantFrom('tok_1', 'tok_2', 'tok_3', 'tok_9')), to: fc.constantFrom('a', 'b'),
    fork: maybe(fc.boolean()), end: maybe(fc.boolean()), task: maybe(fc.record({ name: mostly(['Approve'], ['']), assignee: maybe(fc.constant('bob')) }, { requiredKeys: ['name'] })),
  }),
  fc.record({ kind: fc.constant('complete_task' as const), who, key, instance: ref, task: fc.constantFrom('task_1', 'task_2'), result: maybe(mostly([small], [big(taskResultBytesMax + 1)])), variables: maybe(fc.constantFrom(small, half)), cancel: maybe(fc.boolean()) }),
  fc.record({ kind: fc.constant('finish' as const), who, key, instance: ref, fail: fc.boolean(), reason: mostly(['timeout'], ['']), details: maybe(mostly([small], [big(variablesBytesMax + 1)])) }),
);
type WriteOp = typeof writeOp extends fc.Arbitrary<infer T> ? T : never;

const probe = fc.record({
  thread: ref, after: maybe(fc.integer({ min: 0, max: 6 })), desc: maybe(fc.boolean()), limit: maybe(fc.constantFrom(1, 2, 3, 0, 201)),
  surface: fc.constantFrom('s1', 's2', 'desk.9'), historyLimit: maybe(fc.constantFrom(1, 7, 40)), session: ref, instance: ref,
});
type Probe = typeof probe extends fc.Arbitrary<infer T> ? T : never;

const op = fc.oneof(
  { weight: 14, arbitrary: writeOp },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('retry' as const), pick: fc.nat(), alter: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const), snapshot: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('burst' as const), writes: fc.array(writeOp, { minLength: 2, maxLength: 8 }), readAfter: fc.nat(), probe }) },
  /** More observations of one surface than its history keeps, sent at once. */
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flood' as const), surface: fc.constantFrom('s1', 's2'), count: fc.integer({ min: arHistoryPerSurfaceMax - 3, max: arHistoryPerSurfaceMax + 6 }) }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

/** A planned call, and the URI of the resource it changes when it succeeds. */
type WriteCall = PlannedCall & { readonly changes: (result: Json) => string };
type Plan = { error: string } | { result: Json; apply(result: Json): void; uri(result: Json): string };

const defined = (o: Json): Json => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

class Runner {
  /** URIs changedUris named for the commits since the last look. */
  announced = new Set<string>();
  constructor(readonly f: Fixture, readonly m: Model) {
    this.listen();
  }

  listen(): void {
    this.f.memory.store.onCommit((txs) => {
      for (const tx of txs) for (const u of memoryCatalog.changedUris(tx)) this.announced.add(u);
    });
  }

  attempt(tool: string, args: unknown, w: Who = 0): Promise<Outcome> {
    return attemptTool(this.f, tool, args, callers[w]);
  }

  pick<T>(ids: Iterable<T>, n: number, absent: T): T {
    const list = [...ids];
    return n < list.length ? list[n]! : absent;
  }

  resolve(o: WriteOp): WriteCall {
    const m = this.m;
    const subject = callers[o.who]!.subject;
    const call = (tool: string, args: Json, plan: () => Plan, early?: string): WriteCall => {
      let changes = (_: Json): string => { throw new Error(`${tool} did not write`); };
      return {
        tool, args: defined(args), caller: callers[o.who]!, key: o.key, early, get changes() { return changes; },
        plan: () => {
          const planned = plan();
          if ('uri' in planned) changes = planned.uri;
          return planned;
        },
      };
    };
    switch (o.kind) {
      case 'thread':
        return call('chat_thread_create', { title: o.title }, () => ({
          result: { thread: expect.stringMatching(/^thr_/) },
          apply: (r) => void m.threads.set(r['thread'] as string, { title: o.title ?? '', messages: [] }),
          uri: (r) => uri('chat', r['thread'] as string),
        }), (o.title?.length ?? 0) > 256 ? 'invalid_argument' : undefined);
      case 'append': {
        const thread = this.pick(m.threads.keys(), o.thread, 'thr_absent');
        const early = o.role === 'wizard' || o.content.length > messageContentCharsMax || o.author === '' ? 'invalid_argument' : undefined;
        return call('chat_message_append', { thread, role: o.role, content: o.content, author: o.author }, () => {
          const t = m.threads.get(thread);
          if (!t) return { error: 'not_found' };
          const seq = t.messages.length + 1;
          return {
            result: { seq },
            apply: () => void t.messages.push({ seq, role: o.role, author: o.author ?? subject, content: o.content, at_ms: nowMs }),
            uri: () => uri('chat', thread),
          };
        }, early);
      }
      case 'observe': {
        const early = o.surface === 'bad surface' || o.pose.length !== 7 || o.observed === -1 ? 'invalid_argument' : undefined;
        return call('ar_observe', { surface: o.surface, pose: o.pose, observed_at_ms: o.observed, anchors: o.anchors, payload: o.payload }, () => {
          if (jsonBytes(o.payload ?? {}) > arPayloadBytesMax) return { error: 'limit_exceeded' };
          const current = m.surfaces.get(o.surface);
          const state: ArState = { pose: o.pose, anchors: o.anchors ?? [], payload: o.payload ?? {}, observed_at_ms: o.observed ?? nowMs };
          const seq = (current?.lastSeq ?? 0) + 1;
          const latest = !current || state.observed_at_ms >= current.latest.observed_at_ms;
          return {
            result: { seq, latest },
            apply: () => {
              const s = current ?? { latest: state, lastSeq: 0, history: [] };
              if (latest) s.latest = state;
              s.lastSeq = seq;
              s.history.push({ seq, ...state });
              if (s.history.length > arHistoryPerSurfaceMax) s.history.shift();
              m.surfaces.set(o.surface, s);
            },
            uri: () => uri('ar', o.surface),
          };
        }, early);
      }
      case 'remove_surface':
        return call('ar_surface_remove', { surface: o.surface }, () => {
          const s = m.surfaces.get(o.surface);
          if (!s) return { error: 'not_found' };
          return { result: { observations_removed: s.history.length }, apply: () => void m.surfaces.delete(o.surface), uri: () => uri('ar', o.surface) };
        }, o.surface === 'bad surface' ? 'invalid_argument' : undefined);
      case 'remove_thread': {
        const thread = this.pick(m.threads.keys(), o.thread, 'thr_absent');
        // The model's threads are far below chatRemoveMessagesMax and chatRemoveBytesMax: one call removes one.
        return call('chat_thread_remove', { thread }, () => {
          const t = m.threads.get(thread);
          if (!t) return { error: 'not_found' };
          return { result: { messages_removed: t.messages.length, thread_removed: true }, apply: () => void m.threads.delete(thread), uri: () => uri('chat', thread) };
        });
      }
      case 'session_start':
        return call('session_start', { agent: o.agent, title: o.title, details: o.details }, () => {
          if (jsonBytes(o.details ?? {}) > sessionDetailsBytesMax) return { error: 'limit_exceeded' };
          return {
            result: { session: expect.stringMatching(/^ses_/) },
            apply: (r) => void m.sessions.set(r['session'] as string, { agent: o.agent, title: o.title ?? '', state: 'active', outcome: null, details: o.details ?? {}, ended_at_ms: null }),
            uri: (r) => uri('sessions', r['session'] as string),
          };
        }, o.agent === 'bad agent' ? 'invalid_argument' : undefined);
      case 'session_end': {
        const session = this.pick(m.sessions.keys(), o.session, 'ses_absent');
        return call('session_end', { session, outcome: o.outcome, details: o.details }, () => {
          const s = m.sessions.get(session);
          if (!s) return { error: 'not_found' };
          if (s.state !== 'active') return { error: 'invalid_argument' };
          const details = { ...s.details, ...o.details };
          if (jsonBytes(details) > sessionDetailsBytesMax) return { error: 'limit_exceeded' };
          return {
            result: { duration_ms: 0 },
            apply: () => {
              Object.assign(s, { state: 'ended', outcome: o.outcome, details, ended_at_ms: nowMs });
              m.outbox.set(session, { run_id: session, kind: 'session', definition: s.agent, outcome: o.outcome, details });
            },
            uri: () => uri('sessions', session),
          };
        }, o.outcome === 'exploded' ? 'invalid_argument' : undefined);
      }
      case 'bpmn_start':
        return call('bpmn_start', { definition: o.definition, start_node: o.start, variables: o.variables }, () => {
          if (jsonBytes(o.variables ?? {}) > variablesBytesMax) return { error: 'limit_exceeded' };
          return {
            result: { instance: expect.stringMatching(/^bpm_/), token: 'tok_1' },
            apply: (r) => void m.instances.set(r['instance'] as string, {
              definition: o.definition, state: 'running', variables: o.variables ?? {}, reason: null, ended_at_ms: null, tokens: new Map([['tok_1', o.start]]), tasks: [], tokensMade: 1,
            }),
            uri: (r) => uri('bpmn', r['instance'] as string),
          };
        }, o.definition === 'has space' || o.start === '1bad' ? 'invalid_argument' : undefined);
      case 'move': {
        const id = this.pick(m.instances.keys(), o.instance, 'bpm_absent');
        const early = o.task?.name === '' ? 'invalid_argument' : undefined;
        const userTask = o.task === undefined ? undefined : defined(o.task);
        return call('bpmn_move_token', { instance: id, token: o.token, to: o.to, fork: o.fork, end: o.end, user_task: userTask }, () => {
          const i = m.instances.get(id);
          if (!i) return { error: 'not_found' };
          if (i.state !== 'running') return { error: 'invalid_argument' };
          if (o.end && (o.fork || o.task)) return { error: 'invalid_argument' };
          // The token that moves or ends, or the one a fork leaves from (which stays): it must exist and be free.
          if (o.token !== undefined) {
            if (!i.tokens.has(o.token)) return { error: 'not_found' };
            if (i.tasks.some((t) => t.token === o.token && t.state === 'open')) return { error: 'invalid_argument' };
          }
          if (o.end) {
            const ended = o.token;
            if (ended === undefined) return { error: 'invalid_argument' };
            return { result: { token: ended }, apply: () => void i.tokens.delete(ended), uri: () => uri('bpmn', id) };
          }
          let token: string;
          if (o.fork) {
            // Numbered after every token the instance made: an ended token's id is not given again.
            token = `tok_${i.tokensMade + 1}`;
          } else {
            if (o.token === undefined) return { error: 'invalid_argument' };
            token = o.token;
          }
          const task = o.task ? `task_${i.tasks.length + 1}` : undefined;
          return {
            result: defined({ token, task }),
            apply: () => {
              if (o.fork) i.tokensMade += 1;
              i.tokens.set(token, o.to);
              if (task) i.tasks.push({ task, token, node: o.to, name: o.task!.name, assignee: o.task!.assignee ?? null, state: 'open', result: null });
            },
            uri: () => uri('bpmn', id),
          };
        }, early);
      }
      case 'complete_task': {
        const id = this.pick(m.instances.keys(), o.instance, 'bpm_absent');
        return call('bpmn_complete_task', { instance: id, task: o.task, result: o.result, variables: o.variables, cancel: o.cancel }, () => {
          const i = m.instances.get(id);
          if (!i) return { error: 'not_found' };
          if (i.state !== 'running') return { error: 'invalid_argument' };
          const t = i.tasks.find((x) => x.task === o.task);
          if (!t) return { error: 'not_found' };
          if (t.state !== 'open') return { error: 'invalid_argument' };
          if (jsonBytes(o.result ?? null) > taskResultBytesMax) return { error: 'limit_exceeded' };
          const variables = o.variables ? { ...i.variables, ...o.variables } : i.variables;
          if (jsonBytes(variables) > variablesBytesMax) return { error: 'limit_exceeded' };
          return {
            result: {},
            apply: () => {
              Object.assign(t, { state: o.cancel ? 'cancelled' : 'completed', result: o.result ?? null });
              i.variables = variables;
            },
            uri: () => uri('bpmn', id),
          };
        });
      }
      case 'finish': {
        const id = this.pick(m.instances.keys(), o.instance, 'bpm_absent');
        const tool = o.fail ? 'bpmn_fail' : 'bpmn_complete';
        const early = o.fail && o.reason === '' ? 'invalid_argument' : undefined;
        return call(tool, { instance: id, ...(o.fail ? { reason: o.reason } : {}), details: o.details }, () => {
          const i = m.instances.get(id);
          if (!i) return { error: 'not_found' };
          if (i.state !== 'running') return { error: 'invalid_argument' };
          if (jsonBytes(o.details ?? {}) > variablesBytesMax) return { error: 'limit_exceeded' };
          const open = i.tasks.filter((t) => t.state === 'open');
          if (!o.fail && open.length > 0) return { error: 'invalid_argument' };
          const outcome = o.fail ? 'failed' : 'completed';
          return {
            result: { state: outcome },
            apply: () => {
              for (const t of open) t.state = 'cancelled';
              i.tokens.clear();
              Object.assign(i, { state: outcome, ended_at_ms: nowMs, reason: o.fail ? o.reason : null });
              m.outbox.set(id, { run_id: id, kind: 'bpmn', definition: i.definition, outcome, details: o.fail ? { ...o.details, reason: o.reason } : o.details ?? {} });
            },
            uri: () => uri('bpmn', id),
          };
        }, early);
      }
    }
  }

  send(c: PlannedCall): Promise<Outcome> {
    return this.m.send(this.f, c);
  }

  /** Check one write's outcome against the model as it stands, and apply it; the URI it changed, if it wrote. */
  expectOutcome(c: WriteCall, got: Outcome): string | undefined {
    const result = this.m.expectOutcome(c, got);
    return result === undefined ? undefined : c.changes(result);
  }

  async write(c: WriteCall): Promise<void> {
    const before = this.f.mark();
    this.announced.clear();
    const changed = this.expectOutcome(c, await this.send(c));
    if (changed === undefined) expect(this.f.mark(), `${describeCall(c)} wrote nothing`).toEqual(before);
    else expect([...this.announced], `${describeCall(c)}: announced for the resource it changed`).toContain(changed);
  }

  // ---- what the reads must say

  async read(tool: string, args: Json): Promise<Json> {
    const got = await this.attempt(tool, args);
    if (!got.ok) throw new Error(`${tool} ${JSON.stringify(args)} failed: ${got.code} ${got.message}`);
    return got.value;
  }

  async expectError(tool: string, args: Json, code: string, message?: RegExp): Promise<void> {
    expect(await this.attempt(tool, args), `${tool} ${JSON.stringify(args)}`).toMatchObject({ ok: false, code, ...(message ? { message: expect.stringMatching(message) } : {}) });
  }

  /** Every page from the first: the items and each page's length. */
  async pages(tool: string, args: Json, items: string): Promise<{ all: Json[]; sizes: number[] }> {
    const all: Json[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.read(tool, { ...args, ...(cursor ? { cursor } : {}) });
      all.push(...(page[items] as Json[]));
      sizes.push((page[items] as Json[]).length);
      cursor = page['next_cursor'] as string | undefined;
      expect(sizes.length, `pages of ${tool}`).toBeLessThan(300);
    } while (cursor);
    return { all, sizes };
  }

  async checkMessages(thread: string, after: number | undefined, desc: boolean | undefined, limit: number | undefined): Promise<void> {
    const args = defined({ thread, after_seq: after, desc, limit });
    const what = `chat_messages_list ${JSON.stringify(args)}`;
    if (limit === 0 || limit === 201) return this.expectError('chat_messages_list', args, 'invalid_argument', /limit/);
    const t = this.m.threads.get(thread);
    if (!t) return this.expectError('chat_messages_list', args, 'not_found', /does not exist/);
    const want = desc ? [...t.messages].reverse().filter((x) => after === undefined || x.seq < after) : t.messages.filter((x) => x.seq > (after ?? 0));
    const { all, sizes } = await this.pages('chat_messages_list', args, 'messages');
    expect(all, what).toEqual(want);
    for (const size of sizes.slice(0, -1)) expect(size, `${what}: a full page before the last`).toBe(limit ?? 50);
    const first = await this.read('chat_messages_list', { thread, limit: 1, ...(desc ? { desc } : {}) });
    expect(first, `${what}: title`).toMatchObject({ thread, title: t.title });
    const cursor = first['next_cursor'] as string | undefined;
    if (cursor === undefined) return;
    // A cursor serves the query it paged: not the other direction, another thread, or another tool.
    const foreign = /was not issued for this query/;
    await this.expectError('chat_messages_list', { thread, cursor, ...(desc ? {} : { desc: true }) }, 'invalid_argument', foreign);
    const other = [...this.m.threads.keys()].find((id) => id !== thread);
    if (other) await this.expectError('chat_messages_list', { thread: other, cursor, ...(desc ? { desc } : {}) }, 'invalid_argument', foreign);
    const surface = [...this.m.surfaces.keys()][0];
    if (surface) await this.expectError('ar_history_list', { surface, cursor }, 'invalid_argument', foreign);
  }

  async checkSurface(surface: string, limit: number | undefined): Promise<void> {
    const s = this.m.surfaces.get(surface);
    if (!s) {
      await this.expectError('ar_surface_get', { surface }, 'not_found');
      return this.expectError('ar_history_list', { surface }, 'not_found', /never observed/);
    }
    expect(await this.read('ar_surface_get', { surface }), `ar_surface_get ${surface}`).toEqual(surfaceView(surface, s));
    const { all, sizes } = await this.pages('ar_history_list', defined({ surface, limit }), 'observations');
    expect(all, `ar_history_list ${surface} limit ${limit}`).toEqual([...s.history].reverse());
    for (const size of sizes.slice(0, -1)) expect(size).toBe(limit ?? 50);
  }

  async checkSession(id: string): Promise<void> {
    const s = this.m.sessions.get(id);
    if (!s) return this.expectError('session_get', { session: id }, 'not_found');
    expect(await this.read('session_get', { session: id }), `session_get ${id}`).toEqual(sessionView(id, s));
  }

  async checkInstance(id: string): Promise<void> {
    const i = this.m.instances.get(id);
    if (!i) return this.expectError('bpmn_instance_get', { instance: id }, 'not_found');
    expect(await this.read('bpmn_instance_get', { instance: id }), `bpmn_instance_get ${id}`).toEqual(instanceView(id, i));
  }

  async checkOutbox(): Promise<void> {
    const rows = await this.f.memory.store.read((v) => [...v.table('run_outbox').scan()].map((r) => ({ ...r })));
    const want = [...this.m.outbox.values()].sort((a, b) => byKey(a.run_id, b.run_id)).map((r) => ({ ...r, started_at_ms: nowMs, ended_at_ms: nowMs }));
    expect(rows, 'the run outbox').toEqual(want);
  }

  /** resources/list walked page by page lists each of the model's resources once; each reads as the model says. */
  async checkResources(): Promise<void> {
    const want = this.m.resources();
    const listed: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await memoryCatalog.list(this.f.memory, cursor);
      expect(page.resources.length).toBeLessThanOrEqual(resourcesPageSize);
      listed.push(...page.resources.map((r) => r.uri));
      cursor = page.nextCursor;
    } while (cursor);
    expect(listed.sort(), 'resources/list').toEqual([...want.keys()].sort());
    for (const [u, content] of want) {
      const read = await memoryCatalog.read(this.f.memory, u);
      expect(read.uri).toBe(u);
      expect(JSON.parse(read.text), `resources/read ${u}`).toEqual(content);
    }
  }

  async checkStep(p: Probe): Promise<void> {
    await this.checkMessages(this.pick(this.m.threads.keys(), p.thread, 'thr_absent'), p.after, p.desc, p.limit);
    await this.checkSurface(p.surface, p.historyLimit);
    await this.checkSession(this.pick(this.m.sessions.keys(), p.session, 'ses_absent'));
    await this.checkInstance(this.pick(this.m.instances.keys(), p.instance, 'bpm_absent'));
    expect(this.f.memory.store.lastOffset, 'the store\'s last offset').toBe(this.m.lastOffset);
  }

  async checkAll(): Promise<void> {
    for (const thread of this.m.threads.keys()) {
      await this.checkMessages(thread, undefined, undefined, 2);
      await this.checkMessages(thread, 1, true, 1);
    }
    // One clock: every thread ties on updated_at_ms, so the list is by id, highest first.
    const threads = [...this.m.threads].sort(([a], [b]) => byKey(b, a)).map(([thread, t]) => ({ thread, title: t.title, message_count: t.messages.length, updated_at_ms: nowMs }));
    expect((await this.pages('chat_threads_list', { limit: 2 }, 'threads')).all, 'chat_threads_list').toEqual(threads);
    for (const surface of ['s1', 's2', 'desk.9']) await this.checkSurface(surface, 30);
    const surfaces = [...this.m.surfaces].sort(([a], [b]) => byKey(a, b)).map(([surface, s]) => ({ surface, observed_at_ms: s.latest.observed_at_ms, observations: s.lastSeq }));
    expect((await this.pages('ar_surfaces_list', { limit: 2 }, 'surfaces')).all, 'ar_surfaces_list').toEqual(surfaces);
    for (const id of this.m.sessions.keys()) await this.checkSession(id);
    for (const id of this.m.instances.keys()) await this.checkInstance(id);
    // Runs tie on started_at_ms too: listed by id, highest first, all and those of each state.
    const sessions = [...this.m.sessions].sort(([a], [b]) => byKey(b, a)).map(([session, s]) => ({ session, agent: s.agent, title: s.title, state: s.state, started_at_ms: nowMs }));
    const instances = [...this.m.instances].sort(([a], [b]) => byKey(b, a)).map(([instance, i]) => ({ instance, definition: i.definition, state: i.state, started_at_ms: nowMs }));
    for (const state of [undefined, ...sessionStates]) {
      expect((await this.pages('sessions_list', defined({ state, limit: 2 }), 'sessions')).all, `sessions_list ${state}`).toEqual(sessions.filter((s) => state === undefined || s.state === state));
    }
    for (const state of [undefined, ...instanceStates]) {
      expect((await this.pages('bpmn_instances_list', defined({ state, limit: 2 }), 'instances')).all, `bpmn_instances_list ${state}`).toEqual(instances.filter((i) => state === undefined || i.state === state));
    }
    await this.checkOutbox();
    await this.checkResources();
  }

  async retry(pick: number, alter: boolean): Promise<void> {
    const again = this.m.retry(pick, alter, otherArguments);
    if (again) await this.write({ ...again, changes: () => { throw new Error('a retry writes nothing'); } });
  }

  /** Writes sent without waiting, reads sent between them: each answers as the model after the calls sent before it. */
  async burst(writes: readonly WriteOp[], readAfter: number, p: Probe): Promise<void> {
    const calls = writes.map((w) => this.resolve(w));
    const at = readAfter % calls.length;
    // Ids that exist before the burst (or absent ones), read mid-burst.
    const thread = this.pick(this.m.threads.keys(), p.thread, 'thr_absent');
    const session = this.pick(this.m.sessions.keys(), p.session, 'ses_absent');
    const instance = this.pick(this.m.instances.keys(), p.instance, 'bpm_absent');
    const sent: Promise<Outcome>[] = [];
    let reads: Promise<Outcome>[] = [];
    for (const [i, c] of calls.entries()) {
      sent.push(this.send(c));
      if (i !== at) continue;
      reads = [
        this.attempt('ar_surface_get', { surface: p.surface }),
        this.attempt('ar_history_list', { surface: p.surface, limit: 200 }),
        this.attempt('chat_messages_list', { thread, desc: true, limit: 200 }),
        this.attempt('session_get', { session }),
        this.attempt('bpmn_instance_get', { instance }),
      ];
    }
    const outcomes = await Promise.all(sent);
    for (const [i, c] of calls.entries()) {
      this.expectOutcome(c, outcomes[i]!);
      if (i !== at) continue;
      const [surface, history, messages, sessionRead, instanceRead] = await Promise.all(reads);
      const after = `sent after write ${i} of a burst`;
      const absent = expect.objectContaining({ ok: false, code: 'not_found' });
      const s = this.m.surfaces.get(p.surface);
      expect(surface, `ar_surface_get ${p.surface} ${after}`).toEqual(s ? { ok: true, value: surfaceView(p.surface, s) } : absent);
      expect(history, `ar_history_list ${p.surface} ${after}`).toEqual(s ? { ok: true, value: { observations: [...s.history].reverse() } } : absent);
      const t = this.m.threads.get(thread);
      expect(messages, `chat_messages_list ${thread} ${after}`).toEqual(t ? { ok: true, value: { thread, title: t.title, messages: [...t.messages].reverse() } } : absent);
      const ses = this.m.sessions.get(session);
      expect(sessionRead, `session_get ${session} ${after}`).toEqual(ses ? { ok: true, value: sessionView(session, ses) } : absent);
      const ins = this.m.instances.get(instance);
      expect(instanceRead, `bpmn_instance_get ${instance} ${after}`).toEqual(ins ? { ok: true, value: instanceView(instance, ins) } : absent);
    }
  }

  /** count observations of one surface at once: the history keeps the newest arHistoryPerSurfaceMax. */
  async flood(surface: string, count: number): Promise<void> {
    const calls = Array.from({ length: count }, (_, i) => this.resolve({ kind: 'observe', who: (i % 2) as Who, key: undefined, surface, pose: pose(i), observed: 100 + (i % 5), anchors: undefined, payload: undefined } as WriteOp));
    const outcomes = await Promise.all(calls.map((c) => this.send(c)));
    for (const [i, c] of calls.entries()) this.expectOutcome(c, outcomes[i]!);
    await this.checkSurface(surface, 40);
  }

  async run(o: Op): Promise<void> {
    switch (o.kind) {
      case 'retry':
        return this.retry(o.pick, o.alter);
      case 'reopen': {
        await reopenChecked(this.f, o.snapshot);
        this.listen();
        return this.checkAll();
      }
      case 'burst':
        return this.burst(o.writes, o.readAfter, o.probe);
      case 'flood':
        return this.flood(o.surface, o.count);
      default:
        return this.write(this.resolve(o));
    }
  }
}

/** Arguments a keyed retry must be refused for (conflict), not answered as the first call. */
function otherArguments(tool: string, args: Json): Json {
  switch (tool) {
    case 'chat_thread_create': return { ...args, title: `${String(args['title'] ?? '')}!` };
    case 'chat_message_append': return { ...args, content: `${String(args['content'])}!` };
    case 'ar_observe': return { ...args, observed_at_ms: Number(args['observed_at_ms'] ?? 0) + 1 };
    case 'ar_surface_remove': return { surface: args['surface'] === 's1' ? 's2' : 's1' };
    case 'chat_thread_remove': return { thread: `${String(args['thread'])}0` };
    case 'session_start':
    case 'bpmn_start': return { ...args, title: undefined, ...(tool === 'session_start' ? { agent: 'other' } : { definition: 'other' }) };
    case 'bpmn_move_token': return { ...args, to: args['to'] === 'a' ? 'b' : 'a' };
    case 'bpmn_complete_task': return { ...args, variables: { other: true } };
    default: return { ...args, details: { other: true } };
  }
}

const shrinkingTimeMax = 120_000;

describe('chat, AR, session and BPMN tools against a model', () => {
  test('random writes, retries, bursts, floods and reopens leave every read and resource equal to the model', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(op, probe), { minLength: 1, maxLength: 40, size: 'max' }), async (steps) => {
      const f = await openFixture({ clock: () => nowMs });
      try {
        const run = new Runner(f, new Model(f.memory.store.lastOffset));
        for (const [o, p] of steps) {
          await run.run(o);
          await run.checkStep(p);
        }
        await run.checkAll();
        await reopenChecked(f, true);
        await run.checkAll();
      } finally {
        await f.close();
      }
    }), { numRuns: 30, interruptAfterTimeLimit: shrinkingTimeMax });
  }, shrinkingTimeMax * 2);
});
