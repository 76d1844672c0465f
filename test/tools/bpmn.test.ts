import { z } from 'zod';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { defineReducer } from '../../storage/reducer.js';
import { Store } from '../../storage/store.js';
import { memoryCatalog, memoryModule } from '../../tools/index.js';
import { instanceViewBytesMax, reasonCharsMax, taskNameCharsMax, tasksPerInstanceMax, tokensPerInstanceMax } from '../../tools/bpmn.js';
import { jsonBytes } from '../../tools/json-bytes.js';
import { resultBytesMax } from '../../tools/tool.js';
import { alice, expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

const outbox = () => f.memory.store.read((v) => [...v.table('run_outbox').scan()].map((r) => ({ ...r })));

/** Every item of a list tool, walked a page of one at a time (across ties in time). */
async function walk(g: Fixture, tool: string, args: Record<string, unknown>, items: string): Promise<Record<string, unknown>[]> {
  const seen: Record<string, unknown>[] = [];
  let cursor: string | undefined;
  do {
    const page = await g.call(tool, { ...args, limit: 1, ...(cursor ? { cursor } : {}) });
    seen.push(...page[items]);
    cursor = page.next_cursor;
  } while (cursor);
  return seen;
}

/**
 * A list tool of runs (sessions, process instances) finds every run again, the most recently
 * started first (ties by id, highest first), all of them or those in one state, the same after a
 * reopen from a snapshot; a cursor serves only the filter it paged.
 */
async function expectRunsListed(tool: string, items: string, idOf: string, start: (g: Fixture) => Promise<string>, end: (g: Fixture, id: string) => Promise<unknown>, states: readonly [string, string]): Promise<void> {
  let nowMs = 1000;
  const g = await openFixture({ clock: () => nowMs });
  try {
    const started: Record<string, string> = {};
    for (const [name, at] of [['a', 1000], ['b', 2000], ['c', 2000], ['d', 2000], ['e', 3000]] as const) {
      nowMs = at;
      started[name] = await start(g);
    }
    nowMs = 4000;
    for (const name of ['a', 'c']) await end(g, started[name]!);
    const newestFirst = [started['e']!, ...[started['b']!, started['c']!, started['d']!].sort().reverse(), started['a']!];
    const ended = new Set([started['a'], started['c']]);
    const listed = await walk(g, tool, {}, items);
    expect(listed.map((r) => r[idOf])).toEqual(newestFirst);
    expect(listed.map((r) => [r['state'], r['started_at_ms']])).toEqual(newestFirst.map((id) => [ended.has(id) ? states[1] : states[0], id === started['e'] ? 3000 : id === started['a'] ? 1000 : 2000]));
    expect((await walk(g, tool, { state: states[0] }, items)).map((r) => r[idOf])).toEqual(newestFirst.filter((id) => !ended.has(id)));
    expect((await walk(g, tool, { state: states[1] }, items)).map((r) => r[idOf])).toEqual(newestFirst.filter((id) => ended.has(id)));
    await g.memory.store.snapshot();
    await g.reopen();
    expect(await walk(g, tool, {}, items)).toEqual(listed);
    const firstOfState = await g.call(tool, { state: states[0], limit: 1 });
    await expectRefused(g, g.call(tool, { state: states[1], cursor: firstOfState.next_cursor }), 'invalid_argument', /was not issued for this query/);
    await expectRefused(g, g.call(tool, { cursor: firstOfState.next_cursor }), 'invalid_argument', /was not issued for this query/);
    await expectRefused(g, g.call(tool, { state: 'lost' }), 'invalid_argument');
  } finally {
    await g.close();
  }
}

describe('bpmn', () => {
  test('bpmn_instances_list finds every instance again, the most recently started first, all or only those in one state', async () => {
    const start = async (g: Fixture) => (await g.call('bpmn_start', { definition: 'order', start_node: 'start' })).instance;
    await expectRunsListed('bpmn_instances_list', 'instances', 'instance', start, (g, instance) => g.call('bpmn_complete', { instance }), ['running', 'completed']);
    await expectRunsListed('bpmn_instances_list', 'instances', 'instance', start, (g, instance) => g.call('bpmn_fail', { instance, reason: 'r' }), ['running', 'failed']);
  });

  test('every instance the writes accept stays readable whole: the write that would pass instanceViewBytesMax is refused', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
    // Within every per-field limit: a control character is 6 bytes of JSON, '日' 3 (680 of them fill a 2 KiB result).
    const long = '\u0001'.repeat(taskNameCharsMax);
    const result = { r: '日'.repeat(680) };
    let refused: MemoryError | undefined;
    for (let i = 1; i <= tasksPerInstanceMax && !refused; i++) {
      refused = await f.call('bpmn_move_token', { instance, token, to: 'n', user_task: { name: long, assignee: long } })
        .then(() => f.call('bpmn_complete_task', { instance, task: `task_${i}`, result }))
        .then(() => undefined, (e: MemoryError) => e);
      const view = await f.call('bpmn_instance_get', { instance });
      expect(jsonBytes(view)).toBeLessThanOrEqual(instanceViewBytesMax);
    }
    expect(refused?.code).toBe('limit_exceeded');
    expect(refused?.message).toMatch(/instanceViewBytesMax/);
    // Finishing is never refused for size, and the finished instance is still one result.
    await f.call('bpmn_fail', { instance, reason: '\u0001'.repeat(reasonCharsMax) });
    expect(jsonBytes(await f.call('bpmn_instance_get', { instance }))).toBeLessThanOrEqual(resultBytesMax);
  });

  test('a user task assigned to an empty name is refused, and the instance is unchanged', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
    const before = await f.call('bpmn_instance_get', { instance });
    await expect(f.call('bpmn_move_token', { instance, token, to: 'n', user_task: { name: 'Approve', assignee: '' } }))
      .rejects.toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/assignee/) });
    expect(await f.call('bpmn_instance_get', { instance })).toEqual(before);
  });

  test('an instance runs to completion: start, move, user task, complete; its run lands in the outbox in the same transaction', async () => {
    const started = await f.call('bpmn_start', { definition: 'invoice:2', start_node: 'start', variables: { amount: 120 } });
    expect(started).toMatchObject({ instance: expect.stringMatching(/^bpm_/), token: 'tok_1' });
    const { instance, token } = started;
    await f.call('bpmn_move_token', { instance, token, to: 'review' });
    const moved = await f.call('bpmn_move_token', { instance, token, to: 'approve', user_task: { name: 'Approve invoice', assignee: 'bob' } });
    expect(moved).toMatchObject({ token, task: 'task_1' });
    await expectRefused(f, f.call('bpmn_move_token', { instance, token, to: 'end' }), 'invalid_argument', /waits at open user task/);
    await expectRefused(f, f.call('bpmn_complete', { instance }), 'invalid_argument', /open user task/);
    await f.call('bpmn_complete_task', { instance, task: 'task_1', result: { approved: true }, variables: { approver: 'bob' } });
    await expectRefused(f, f.call('bpmn_complete_task', { instance, task: 'task_1' }), 'invalid_argument', /completed/);
    await f.call('bpmn_move_token', { instance, token, to: 'end' });
    const view = await f.call('bpmn_instance_get', { instance });
    expect(view).toMatchObject({
      definition: 'invoice:2', state: 'running', variables: { amount: 120, approver: 'bob' },
      tokens: [{ token, node: 'end' }],
      tasks: [{ task: 'task_1', name: 'Approve invoice', assignee: 'bob', state: 'completed', result: { approved: true } }],
    });
    const commits: string[][] = [];
    const stop = f.memory.store.onCommit((txs) => commits.push(...txs.map((t) => t.changes.map((c) => c.table))));
    const done = await f.call('bpmn_complete', { instance, details: { note: 'paid' } });
    stop();
    expect(done.state).toBe('completed');
    expect(commits).toEqual([['bpmn_instances', 'bpmn_tokens', 'run_outbox']]);
    expect(await outbox()).toEqual([{
      run_id: instance, kind: 'bpmn', definition: 'invoice:2', outcome: 'completed',
      started_at_ms: expect.any(Number), ended_at_ms: expect.any(Number), details: { note: 'paid' },
    }]);
    await expectRefused(f, f.call('bpmn_move_token', { instance, token, to: 'start' }), 'invalid_argument', /completed, not running/);
    await expectRefused(f, f.call('bpmn_fail', { instance, reason: 'late' }), 'invalid_argument');
  });

  test('failing cancels open tasks, records the reason, and writes a failed run', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: 'onboarding', start_node: 'start' });
    const fork = await f.call('bpmn_move_token', { instance, fork: true, to: 'parallel', user_task: { name: 'Sign' } });
    expect(fork.token).toBe('tok_2');
    await f.call('bpmn_move_token', { instance, token, to: 'wait' });
    await f.call('bpmn_fail', { instance, reason: 'timeout', details: { after_ms: 1000 } });
    const view = await f.call('bpmn_instance_get', { instance });
    expect(view).toMatchObject({ state: 'failed', reason: 'timeout', tokens: [], tasks: [{ state: 'cancelled' }] });
    expect(await outbox()).toEqual([expect.objectContaining({ run_id: instance, outcome: 'failed', details: { after_ms: 1000, reason: 'timeout' } })]);
  });

  test('a fork from a named token: the token must exist and be free; it stays where it is, the new one goes to `to`', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: 'd', start_node: 'gateway' });
    await expectRefused(f, f.call('bpmn_move_token', { instance, token: 'tok_9', fork: true, to: 'b' }), 'not_found', /has no token tok_9/);
    const forked = await f.call('bpmn_move_token', { instance, token, fork: true, to: 'b', user_task: { name: 'Review' } });
    expect(forked).toMatchObject({ token: 'tok_2', task: 'task_1' });
    expect((await f.call('bpmn_instance_get', { instance })).tokens).toEqual([{ token, node: 'gateway' }, { token: 'tok_2', node: 'b' }]);
    // tok_2 waits at its task: no branch leaves from it until the task is done.
    await expectRefused(f, f.call('bpmn_move_token', { instance, token: 'tok_2', fork: true, to: 'c' }), 'invalid_argument', /waits at open user task task_1/);
    await f.call('bpmn_complete_task', { instance, task: 'task_1' });
    expect(await f.call('bpmn_move_token', { instance, token: 'tok_2', fork: true, to: 'c' })).toMatchObject({ token: 'tok_3' });
  });

  test('a token ends at an end event or a join (end: true): it is removed, its id never given again, and its place under tokensPerInstanceMax freed', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: 'd', start_node: 'split' });
    await f.call('bpmn_move_token', { instance, token, fork: true, to: 'a' });
    await f.call('bpmn_move_token', { instance, token, fork: true, to: 'b', user_task: { name: 'Check' } });
    expect(await f.call('bpmn_move_token', { instance, token: 'tok_2', to: 'join', end: true })).toMatchObject({ token: 'tok_2' });
    expect((await f.call('bpmn_instance_get', { instance })).tokens).toEqual([{ token, node: 'split' }, { token: 'tok_3', node: 'b' }]);
    await expectRefused(f, f.call('bpmn_move_token', { instance, token: 'tok_2', to: 'x' }), 'not_found', /has no token tok_2/);
    await expectRefused(f, f.call('bpmn_move_token', { instance, token: 'tok_3', to: 'join', end: true }), 'invalid_argument', /waits at open user task/);
    await expectRefused(f, f.call('bpmn_move_token', { instance, to: 'join', end: true }), 'invalid_argument', /token is required with end/);
    await expectRefused(f, f.call('bpmn_move_token', { instance, token, to: 'join', end: true, fork: true }), 'invalid_argument', /end cannot go with fork/);
    await expectRefused(f, f.call('bpmn_move_token', { instance, token, to: 'join', end: true, user_task: { name: 'x' } }), 'invalid_argument', /end cannot go with user_task/);
    // tok_3 is the newest token left: ended, its id is still not given to the next fork.
    await f.call('bpmn_complete_task', { instance, task: 'task_1' });
    await f.call('bpmn_move_token', { instance, token: 'tok_3', to: 'join', end: true });
    expect(await f.call('bpmn_move_token', { instance, token, fork: true, to: 'c' })).toMatchObject({ token: 'tok_4' });
    await f.reopen();
    expect(await f.call('bpmn_move_token', { instance, token, fork: true, to: 'c' })).toMatchObject({ token: 'tok_5' });
    // Every token ended: the instance completes.
    for (const t of [token, 'tok_4', 'tok_5']) await f.call('bpmn_move_token', { instance, token: t, to: 'end', end: true });
    expect(await f.call('bpmn_complete', { instance })).toMatchObject({ state: 'completed' });
  });

  test('an instance written before tokens could end (tokens_made absent) numbers its next fork after its tokens', async () => {
    // Code of that release: instance rows without tokens_made (stored as its default, 0), tokens tok_1..tok_3.
    const legacyStart = defineReducer({
      name: 'legacy_start', args: z.object({}),
      run(ctx) {
        ctx.table('bpmn_instances').insert({ id: 'bpm_old', definition: 'd', state: 'running', variables: {}, started_at_ms: 0, started_by: 'alice', ended_at_ms: null, reason: null });
        for (const n of [1, 2, 3]) ctx.table('bpmn_tokens').insert({ instance: 'bpm_old', token: `tok_${n}`, node: 's', moved_at_ms: 0 });
        return {};
      },
    });
    await f.memory.close();
    const old = await Store.open({ dir: f.dir, module: { ...memoryModule, reducers: [...memoryModule.reducers, legacyStart] } });
    await old.call('legacy_start', {}, alice);
    await old.close();
    await f.reopen();
    await f.call('bpmn_move_token', { instance: 'bpm_old', token: 'tok_3', to: 'join', end: true });
    expect(await f.call('bpmn_move_token', { instance: 'bpm_old', token: 'tok_1', fork: true, to: 'a' })).toMatchObject({ token: 'tok_4' });
  });

  test('a user task cancelled (cancel: true, a boundary timer) ends cancelled with its result; its token moves on and the instance completes', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
    await f.call('bpmn_move_token', { instance, token, to: 'review', user_task: { name: 'Review' } });
    await f.call('bpmn_complete_task', { instance, task: 'task_1', cancel: true, result: { why: 'timer 2d' }, variables: { escalated: true } });
    await expectRefused(f, f.call('bpmn_complete_task', { instance, task: 'task_1' }), 'invalid_argument', /task task_1 is cancelled/);
    await f.call('bpmn_move_token', { instance, token, to: 'escalate' });
    expect(await f.call('bpmn_instance_get', { instance })).toMatchObject({
      variables: { escalated: true }, tokens: [{ token, node: 'escalate' }], tasks: [{ task: 'task_1', state: 'cancelled', result: { why: 'timer 2d' } }],
    });
    expect(await f.call('bpmn_complete', { instance })).toMatchObject({ state: 'completed' });
  });

  test('an instance lists its tokens and user tasks in the order they were made, past ten of each (tool and resource)', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
    for (let i = 1; i <= 12; i++) {
      const { task } = await f.call('bpmn_move_token', { instance, token, to: `step${i}`, user_task: { name: `step ${i}` } });
      await f.call('bpmn_complete_task', { instance, task });
    }
    for (let i = 1; i <= 10; i++) await f.call('bpmn_move_token', { instance, fork: true, to: `branch${i}` });
    const made = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}_${i + 1}`);
    const view = await f.call('bpmn_instance_get', { instance });
    expect(view.tasks.map((t: { task: string }) => t.task), 'the newest task last').toEqual(made('task', 12));
    expect(view.tokens.map((t: { token: string }) => t.token), 'the newest token last').toEqual(made('tok', 11));
    const resource = JSON.parse((await memoryCatalog.read(f.memory, `memory://bpmn/${instance}`)).text);
    expect(resource.tasks).toEqual(view.tasks);
    expect(resource.tokens).toEqual(view.tokens);
  });

  test('the control plane drains the outbox with run_outbox_remove (a second removal is a no-op)', async () => {
    const { instance } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
    await f.call('bpmn_complete', { instance });
    const removed = await f.memory.store.call('run_outbox_remove', { run_id: instance }, alice);
    expect(removed.result).toEqual({ run_id: instance, removed: true });
    const again = await f.memory.store.call('run_outbox_remove', { run_id: instance }, alice);
    expect(again.result).toEqual({ run_id: instance, removed: false });
    expect(await outbox()).toEqual([]);
  });

  test('past tokensPerInstanceMax and tasksPerInstanceMax a move is refused naming the limit', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
    await Promise.all(Array.from({ length: tokensPerInstanceMax - 1 }, () => f.call('bpmn_move_token', { instance, fork: true, to: 'p' })));
    const forks = await expectRefused(f, f.call('bpmn_move_token', { instance, fork: true, to: 'p' }), 'limit_exceeded', new RegExp(`has ${tokensPerInstanceMax} tokens; the limit \\(tokensPerInstanceMax\\)`));
    expect(forks.hint).toMatch(/end: true/);
    await f.call('bpmn_move_token', { instance, token: 'tok_2', to: 'end', end: true });
    expect(await f.call('bpmn_move_token', { instance, fork: true, to: 'p' })).toMatchObject({ token: `tok_${tokensPerInstanceMax + 1}` });
    for (let i = 1; i <= tasksPerInstanceMax; i++) {
      await f.call('bpmn_move_token', { instance, token, to: 'n', user_task: { name: `t${i}` } });
      await f.call('bpmn_complete_task', { instance, task: `task_${i}` });
    }
    await expectRefused(f, f.call('bpmn_move_token', { instance, token, to: 'n', user_task: { name: 'one more' } }), 'limit_exceeded',
      new RegExp(`has ${tasksPerInstanceMax} user tasks; the limit \\(tasksPerInstanceMax\\)`));
  });

  test('process and node ids as BPMN modelers write them (XML NCNames: a leading underscore too) are taken', async () => {
    const { instance, token } = await f.call('bpmn_start', { definition: '_Process_1', start_node: '_6-61' });
    const uuidNode = '_a1b2c3d4-e5f6-4a5b-9c8d-0e1f2a3b4c5d';
    await f.call('bpmn_move_token', { instance, token, to: uuidNode, user_task: { name: 'Review' } });
    await f.call('bpmn_move_token', { instance, fork: true, to: 'Activity_1x2y3z4' });
    expect((await f.call('bpmn_instance_get', { instance })).tokens).toEqual([{ token, node: uuidNode }, { token: 'tok_2', node: 'Activity_1x2y3z4' }]);
    await expectRefused(f, f.call('bpmn_move_token', { instance, token: 'tok_2', to: '1st' }), 'invalid_argument', /node must match/);
    await expectRefused(f, f.call('bpmn_move_token', { instance, token: 'tok_2', to: 'a b' }), 'invalid_argument', /node must match/);
  });

  test('bad references are not_found or invalid_argument and write nothing', async () => {
    const { instance } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
    await expectRefused(f, f.call('bpmn_start', { definition: 'has space', start_node: 's' }), 'invalid_argument');
    await expectRefused(f, f.call('bpmn_move_token', { instance: 'bpm_nope', token: 'tok_1', to: 'x' }), 'not_found');
    await expectRefused(f, f.call('bpmn_move_token', { instance, token: 'tok_9', to: 'x' }), 'not_found');
    await expectRefused(f, f.call('bpmn_move_token', { instance, to: 'x' }), 'invalid_argument', /token is required/);
    await expectRefused(f, f.call('bpmn_complete_task', { instance, task: 'task_1' }), 'not_found');
    await expectRefused(f, f.call('bpmn_start', { definition: 'd', start_node: 's', variables: { big: 'x'.repeat(20_000) } }), 'limit_exceeded');
    await expectRefused(f, f.call('bpmn_instance_get', { instance: 'bpm_nope' }), 'not_found');
  });
});

describe('agent sessions', () => {
  test('sessions_list finds every session again, the most recently started first, all or only those active or ended', () =>
    expectRunsListed('sessions_list', 'sessions', 'session',
      async (g) => (await g.call('session_start', { agent: 'fundi/planner' })).session,
      (g, session) => g.call('session_end', { session, outcome: 'completed' }), ['active', 'ended']));

  test('start and end; ending writes a session run to the outbox; ending twice is refused', async () => {
    const { session } = await f.call('session_start', { agent: 'fundi/planner', title: 'Plan week', details: { model: 'x' } });
    expect(session).toMatch(/^ses_/);
    expect(await f.call('session_get', { session })).toMatchObject({ agent: 'fundi/planner', state: 'active', outcome: null });
    const ended = await f.call('session_end', { session, outcome: 'completed', details: { steps: 4 } });
    expect(ended.duration_ms).toBeGreaterThanOrEqual(0);
    expect(await f.call('session_get', { session })).toMatchObject({ state: 'ended', outcome: 'completed', details: { model: 'x', steps: 4 } });
    expect(await outbox()).toEqual([{
      run_id: session, kind: 'session', definition: 'fundi/planner', outcome: 'completed',
      started_at_ms: expect.any(Number), ended_at_ms: expect.any(Number), details: { model: 'x', steps: 4 },
    }]);
    await expectRefused(f, f.call('session_end', { session, outcome: 'failed' }), 'invalid_argument', /already ended/);
    await expectRefused(f, f.call('session_end', { session: 'ses_nope', outcome: 'failed' }), 'not_found');
    await expectRefused(f, f.call('session_end', { session, outcome: 'exploded' }), 'invalid_argument');
  });
});
