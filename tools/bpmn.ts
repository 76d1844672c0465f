/**
 * BPMN execution state: process instances, their tokens (where execution stands) and user
 * tasks (work waiting for a person or agent). The caller drives the process; these reducers
 * keep its state consistent: a token waiting at an open user task cannot move, a run
 * completes only with no open task, and finishing a run writes its run-history row to the
 * outbox in the same transaction.
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { defineReducer, type ReducerContext, type TableReader } from '../storage/reducer.js';
import type { JsonValue, Row, TableSchema } from '../storage/schema.js';
import { cursorScope } from './cursor.js';
import { readTool, writeTool } from './define-tool.js';
import { patterned, rowId } from './identifiers.js';
import { boundJsonBytes } from './json-bytes.js';
import { newestFirstPage } from './newest-first.js';
import { pageCursor, pageLimit } from './result-page.js';
import { recordFinishedRun } from './run-outbox.js';
import type { ToolDef } from './tool.js';
import { int, jsonObject } from './wire-schema.js';

/**
 * Process and node ids as BPMN files spell them (XML NCNames, ASCII): modelers start them with a
 * letter (StartEvent_1, sid-4F2A...) or an underscore (_6-61, _a1b2c3d4-e5f6-...).
 */
export const definitionPattern = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;
export const nodePattern = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
export const tokensPerInstanceMax = 64;
export const tasksPerInstanceMax = 100;
/** UTF-8 bytes of JSON: an instance's variables, and the details given when it finishes. */
export const variablesBytesMax = 16 * 1024;
/** UTF-8 bytes of JSON of one user task's result. */
export const taskResultBytesMax = 2 * 1024;
export const reasonCharsMax = 1024;
export const taskNameCharsMax = 256;
export const assigneeCharsMax = 256;
/**
 * UTF-8 bytes of JSON of an instance as bpmn_instance_get (and memory://bpmn/{id}) returns it:
 * a move or task completion that would take it past this is refused, so every instance stays
 * readable in one result. The per-field limits alone allow more (100 tasks of long names and
 * 2 KiB results). The rest of resultBytesMax is room for finishing (reason, end time,
 * cancelled tasks), which is never refused for size.
 */
export const instanceViewBytesMax = 192 * 1024;

export const bpmnInstancesTable: TableSchema = {
  name: 'bpmn_instances',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'definition', type: 'string' },
    { name: 'state', type: 'string' }, // instanceStates
    { name: 'variables', type: 'json' },
    { name: 'started_at_ms', type: 'int' },
    { name: 'started_by', type: 'string' },
    { name: 'ended_at_ms', type: 'int', nullable: true },
    { name: 'reason', type: 'string', nullable: true },
    // Tokens ever made (start, forks): a fork numbers its token after them, so the id of a token
    // that ended is never given again. 0 in instances from before tokens could end (tok_1..tok_n).
    { name: 'tokens_made', type: 'int', addedLater: true, default: 0 },
  ],
  primaryKey: ['id'],
  // bpmn_instances_list: the most recently started first, of every state or of one (ids are random).
  indexes: [
    { name: 'bpmn_instances_by_started', columns: ['started_at_ms'] },
    { name: 'bpmn_instances_by_state', columns: ['state', 'started_at_ms'] },
  ],
};
export const instanceStates = ['running', 'completed', 'failed'] as const;

export const bpmnTokensTable: TableSchema = {
  name: 'bpmn_tokens',
  columns: [
    { name: 'instance', type: 'string' },
    { name: 'token', type: 'string' },
    { name: 'node', type: 'string' },
    { name: 'moved_at_ms', type: 'int' },
  ],
  primaryKey: ['instance', 'token'],
};

export const bpmnTasksTable: TableSchema = {
  name: 'bpmn_tasks',
  columns: [
    { name: 'instance', type: 'string' },
    { name: 'task', type: 'string' },
    { name: 'token', type: 'string' },
    { name: 'node', type: 'string' },
    { name: 'name', type: 'string' },
    { name: 'assignee', type: 'string', nullable: true },
    { name: 'state', type: 'string' }, // open | completed | cancelled
    { name: 'result', type: 'json', nullable: true },
    { name: 'created_at_ms', type: 'int' },
    { name: 'completed_at_ms', type: 'int', nullable: true },
    { name: 'completed_by', type: 'string', nullable: true },
  ],
  primaryKey: ['instance', 'task'],
};

const definition = patterned(definitionPattern, 'definition');
const node = patterned(nodePattern, 'node');
const variables = jsonObject;

function runningInstance(ctx: ReducerContext, id: string): Row {
  const instance = ctx.table('bpmn_instances').get([id]);
  if (!instance) throw new MemoryError('not_found', `process instance ${id} does not exist`);
  if (instance['state'] !== 'running') throw new MemoryError('invalid_argument', `process instance ${id} is ${String(instance['state'])}, not running`);
  return instance;
}

/** Called after a reducer's writes: past the bound it throws, and the transaction rolls back. */
function boundInstanceView(ctx: ReducerContext, id: string): void {
  boundJsonBytes(`process instance ${id} (as bpmn_instance_get returns it)`, bpmnInstanceView(ctx, id), 'instanceViewBytesMax', instanceViewBytesMax,
    'keep bulky task results and variables elsewhere (e.g. object_put) and store a reference; or finish this instance and start another');
}

function openTasks(tasks: TableReader, instance: string): Row[] {
  return [...tasks.scan({ prefix: [instance] })].filter((t) => t['state'] === 'open');
}

function requireFreeToken(tokens: TableReader, tasks: TableReader, instance: string, token: string): void {
  if (!tokens.get([instance, token])) throw new MemoryError('not_found', `instance ${instance} has no token ${token}`);
  const waiting = openTasks(tasks, instance).find((t) => t['token'] === token);
  if (waiting) {
    throw new MemoryError('invalid_argument', `token ${token} waits at open user task ${String(waiting['task'])}`, 'complete it with bpmn_complete_task first');
  }
}

// ---- bpmn_start

const startArgs = z.object({ definition, start_node: node, variables: variables.optional() });
const startResult = z.object({ instance: z.string(), token: z.string() });

export const bpmnStart = defineReducer({
  name: 'bpmn_start',
  args: startArgs,
  run(ctx, a): z.infer<typeof startResult> {
    boundJsonBytes('variables', a.variables ?? {}, 'variablesBytesMax', variablesBytesMax);
    const instances = ctx.table('bpmn_instances');
    let id = ctx.newId('bpm');
    // Run ids share the outbox with sessions; the prefix keeps them apart, the loop keeps them unique.
    while (instances.get([id]) || ctx.table('run_outbox').get([id])) id = ctx.newId('bpm');
    instances.insert({
      id, definition: a.definition, state: 'running', variables: a.variables ?? {},
      started_at_ms: ctx.timestampMs, started_by: ctx.caller.subject, ended_at_ms: null, reason: null, tokens_made: 1,
    });
    const token = 'tok_1';
    ctx.table('bpmn_tokens').insert({ instance: id, token, node: a.start_node, moved_at_ms: ctx.timestampMs });
    return { instance: id, token };
  },
});

// ---- bpmn_move_token

const moveArgs = z.object({
  instance: rowId,
  token: rowId.optional(),
  to: node,
  fork: z.boolean().optional(),
  end: z.boolean().optional(),
  // An assignee is someone: leave it out for none ('' read as a person named nothing).
  user_task: z.object({ name: z.string().min(1).max(taskNameCharsMax), assignee: z.string().min(1).max(assigneeCharsMax).optional() }).optional(),
});
const moveResult = z.object({ token: z.string(), task: z.string().optional() });

export const bpmnMoveToken = defineReducer({
  name: 'bpmn_move_token',
  args: moveArgs,
  run(ctx, a): z.infer<typeof moveResult> {
    const instance = runningInstance(ctx, a.instance);
    const instances = ctx.table('bpmn_instances');
    const tokens = ctx.table('bpmn_tokens');
    const tasks = ctx.table('bpmn_tasks');
    if (a.end && (a.fork || a.user_task)) {
      throw new MemoryError('invalid_argument', `end cannot go with ${a.fork ? 'fork' : 'user_task'}: a token that ends is removed`, 'end the token in one call, fork or open a task in another');
    }
    // The token that moves or ends, or with fork the one the branch leaves from (it stays where
    // it is): it must exist and not wait at an open user task, as a token passing a gateway.
    if (a.token !== undefined) requireFreeToken(tokens, tasks, a.instance, a.token);
    const existing = [...tokens.scan({ prefix: [a.instance] })];
    const made = Math.max(instance['tokens_made'] as number, existing.length);
    if (a.end) {
      // At an end event, or a join its branch merges into: the token is gone, its id not reused.
      if (a.token === undefined) throw new MemoryError('invalid_argument', 'token is required with end');
      tokens.delete([a.instance, a.token]);
      if (made !== instance['tokens_made']) instances.update({ ...instance, tokens_made: made });
      return { token: a.token };
    }
    let token: string;
    if (a.fork) {
      // A parallel branch: a new token, numbered after every token the instance has made.
      if (existing.length >= tokensPerInstanceMax) {
        throw new MemoryError('limit_exceeded', `instance ${a.instance} has ${existing.length} tokens; the limit (tokensPerInstanceMax) is ${tokensPerInstanceMax}`,
          'end tokens whose branch is done (end: true), move a token it has instead of forking, or finish this instance and start another');
      }
      let n = made + 1;
      while (tokens.get([a.instance, `tok_${n}`])) n++;
      token = `tok_${n}`;
      instances.update({ ...instance, tokens_made: n });
    } else {
      if (a.token === undefined) throw new MemoryError('invalid_argument', 'token is required unless fork is true');
      token = a.token;
    }
    tokens.upsert({ instance: a.instance, token, node: a.to, moved_at_ms: ctx.timestampMs });
    if (!a.user_task) {
      boundInstanceView(ctx, a.instance);
      return { token };
    }
    let taskCount = 0;
    for (const _ of tasks.scan({ prefix: [a.instance] })) taskCount++;
    if (taskCount >= tasksPerInstanceMax) {
      throw new MemoryError('limit_exceeded', `instance ${a.instance} has ${taskCount} user tasks; the limit (tasksPerInstanceMax) is ${tasksPerInstanceMax}`,
        'finish this instance and start another');
    }
    const task = `task_${taskCount + 1}`;
    tasks.insert({
      instance: a.instance, task, token, node: a.to, name: a.user_task.name, assignee: a.user_task.assignee ?? null,
      state: 'open', result: null, created_at_ms: ctx.timestampMs, completed_at_ms: null, completed_by: null,
    });
    boundInstanceView(ctx, a.instance);
    return { token, task };
  },
});

// ---- bpmn_complete_task

const completeTaskArgs = z.object({ instance: rowId, task: rowId, result: variables.optional(), variables: variables.optional(), cancel: z.boolean().optional() });
const completeTaskResult = z.object({});

export const bpmnCompleteTask = defineReducer({
  name: 'bpmn_complete_task',
  args: completeTaskArgs,
  run(ctx, a): z.infer<typeof completeTaskResult> {
    const instance = runningInstance(ctx, a.instance);
    const tasks = ctx.table('bpmn_tasks');
    const task = tasks.get([a.instance, a.task]);
    if (!task) throw new MemoryError('not_found', `instance ${a.instance} has no task ${a.task}`);
    if (task['state'] !== 'open') throw new MemoryError('invalid_argument', `task ${a.task} is ${String(task['state'])}`);
    boundJsonBytes('result', a.result ?? null, 'taskResultBytesMax', taskResultBytesMax);
    // Cancelled: an interrupting boundary event (a timer, an escalation) took the token on without the work.
    const state = a.cancel ? 'cancelled' : 'completed';
    tasks.update({ ...task, state, result: a.result ?? null, completed_at_ms: ctx.timestampMs, completed_by: ctx.caller.subject });
    if (a.variables) {
      const merged = { ...(instance['variables'] as Record<string, unknown>), ...a.variables };
      boundJsonBytes('merged variables', merged, 'variablesBytesMax', variablesBytesMax);
      ctx.table('bpmn_instances').update({ ...instance, variables: merged });
    }
    boundInstanceView(ctx, a.instance);
    return {};
  },
});

// ---- bpmn_complete / bpmn_fail

const completeArgs = z.object({ instance: rowId, details: variables.optional() });
const failArgs = z.object({ instance: rowId, reason: z.string().min(1).max(reasonCharsMax), details: variables.optional() });
const finishResult = z.object({ state: z.string() });

function finish(ctx: ReducerContext, id: string, outcome: 'completed' | 'failed', reason: string | null, details: Record<string, unknown>): z.infer<typeof finishResult> {
  const instance = runningInstance(ctx, id);
  boundJsonBytes('details', details, 'variablesBytesMax', variablesBytesMax);
  const tasks = ctx.table('bpmn_tasks');
  const open = openTasks(tasks, id);
  if (outcome === 'completed' && open.length > 0) {
    throw new MemoryError('invalid_argument', `instance ${id} has ${open.length} open user task(s), e.g. ${String(open[0]!['task'])}`, 'complete them or use bpmn_fail');
  }
  for (const t of open) tasks.update({ ...t, state: 'cancelled', completed_at_ms: ctx.timestampMs, completed_by: ctx.caller.subject });
  const tokens = ctx.table('bpmn_tokens');
  for (const t of [...tokens.scan({ prefix: [id] })]) tokens.delete([id, t['token'] as string]);
  ctx.table('bpmn_instances').update({ ...instance, state: outcome, ended_at_ms: ctx.timestampMs, reason });
  recordFinishedRun(ctx, {
    run_id: id,
    kind: 'bpmn',
    definition: instance['definition'] as string,
    outcome,
    started_at_ms: instance['started_at_ms'] as number,
    ended_at_ms: ctx.timestampMs,
    details: (reason === null ? details : { ...details, reason }) as JsonValue,
  });
  return { state: outcome };
}

export const bpmnComplete = defineReducer({
  name: 'bpmn_complete',
  args: completeArgs,
  run: (ctx, a) => finish(ctx, a.instance, 'completed', null, a.details ?? {}),
});

export const bpmnFail = defineReducer({
  name: 'bpmn_fail',
  args: failArgs,
  run: (ctx, a) => finish(ctx, a.instance, 'failed', a.reason, a.details ?? {}),
});

// ---- reading an instance (tool and resource)

/** The number of a generated token or task id (`tok_3`, `task_12`): the order it was made in. */
function madeNumber(id: string): number {
  return Number(id.slice(id.lastIndexOf('_') + 1));
}

/**
 * Tokens and tasks in the order they were made. Their keys sort as text, which put `task_10`
 * before `task_2`: a reader taking the last task for the newest took the wrong one.
 */
function inMadeOrder<T>(rows: T[], idOf: (row: T) => string): T[] {
  return rows.sort((a, b) => madeNumber(idOf(a)) - madeNumber(idOf(b)));
}

export function bpmnInstanceView(view: { table(name: string): TableReader }, id: string): BpmnInstanceView | undefined {
  const instance = view.table('bpmn_instances').get([id]);
  if (!instance) return undefined;
  return {
    instance: id,
    definition: instance['definition'] as string,
    state: instance['state'] as string,
    variables: instance['variables'] as Record<string, unknown>,
    started_at_ms: instance['started_at_ms'] as number,
    ended_at_ms: instance['ended_at_ms'] as number | null,
    reason: instance['reason'] as string | null,
    tokens: inMadeOrder([...view.table('bpmn_tokens').scan({ prefix: [id] })].map((t) => ({ token: t['token'] as string, node: t['node'] as string })), (t) => t.token),
    tasks: inMadeOrder([...view.table('bpmn_tasks').scan({ prefix: [id] })].map((t) => ({
      task: t['task'] as string, token: t['token'] as string, node: t['node'] as string, name: t['name'] as string,
      assignee: t['assignee'] as string | null, state: t['state'] as string, result: t['result'] as JsonValue,
    })), (t) => t.task),
  };
}

const instanceOutput = z.object({
  instance: z.string(),
  definition: z.string(),
  state: z.string(),
  variables,
  started_at_ms: int(),
  ended_at_ms: int().nullable(),
  reason: z.string().nullable(),
  tokens: z.array(jsonObject), // {token, node}
  tasks: z.array(jsonObject), // {task, token, node, name, assignee, state, result}
});

export interface BpmnInstanceView {
  instance: string;
  definition: string;
  state: string;
  variables: Record<string, unknown>;
  started_at_ms: number;
  ended_at_ms: number | null;
  reason: string | null;
  tokens: { token: string; node: string }[];
  tasks: { task: string; token: string; node: string; name: string; assignee: string | null; state: string; result: JsonValue }[];
}

const instanceViewKib = instanceViewBytesMax / 1024;

export const bpmnTools: ToolDef[] = [
  writeTool({
    reducer: bpmnStart, args: startArgs, result: startResult, title: 'Start process',
    description: 'Start a process instance of a definition with one token at start_node.',
  }),
  writeTool({
    reducer: bpmnMoveToken, args: moveArgs, result: moveResult, title: 'Move token',
    description: 'Move `token` to node `to`. fork: a new token at `to` instead (from `token` if given; it stays). end: `token` ends at `to` (end event, join), removed. user_task: a task it then waits on.',
  }),
  writeTool({
    reducer: bpmnCompleteTask, args: completeTaskArgs, result: completeTaskResult, title: 'Complete user task',
    description: 'Complete an open user task (result stored; variables merged into the instance); cancel: it ends cancelled instead (e.g. a boundary timer). Its token is then free to move.',
  }),
  writeTool({
    reducer: bpmnComplete, args: completeArgs, result: finishResult, title: 'Complete process',
    description: 'Complete a running instance (no open tasks allowed); records its run history.',
  }),
  writeTool({
    reducer: bpmnFail, args: failArgs, result: finishResult, title: 'Fail process',
    description: 'Fail a running instance with a reason (open tasks cancelled); records its run history.',
  }),
  readTool({
    name: 'bpmn_instance_get', title: 'Get process instance', description: `A process instance with its tokens and user tasks; writes past ${instanceViewKib} KiB are refused.`,
    input: z.object({ instance: rowId }), output: instanceOutput,
    run: ({ memory }, a) => memory.store.read((view) => {
      const found = bpmnInstanceView(view, a.instance);
      if (!found) throw new MemoryError('not_found', `process instance ${a.instance} does not exist`);
      return found;
    }),
  }),
  readTool({
    name: 'bpmn_instances_list', title: 'List process instances', description: 'Process instances, most recently started first (state: only those in it). Paged.',
    input: z.object({ state: z.enum(instanceStates).optional(), cursor: pageCursor, limit: pageLimit }),
    output: z.object({ instances: z.array(z.object({ instance: z.string(), definition: z.string(), state: z.string(), started_at_ms: int() })), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const query = {
        ...(a.state === undefined ? { index: 'bpmn_instances_by_started', equal: [] } : { index: 'bpmn_instances_by_state', equal: [a.state] }),
        scope: cursorScope(caller.tenant, 'bpmn_instances_list', a.state ?? null), cursor: a.cursor, limit: a.limit,
      };
      const { items, ...next } = newestFirstPage(view.table('bpmn_instances'), query,
        (r) => ({ instance: r['id'] as string, definition: r['definition'] as string, state: r['state'] as string, started_at_ms: r['started_at_ms'] as number }),
        (i) => [i.started_at_ms, i.instance]);
      return { instances: items, ...next };
    }),
  }),
];

export const bpmnReducers = [bpmnStart, bpmnMoveToken, bpmnCompleteTask, bpmnComplete, bpmnFail];
export const bpmnTables = [bpmnInstancesTable, bpmnTokensTable, bpmnTasksTable];
