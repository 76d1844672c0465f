/**
 * Chat threads and their messages. Messages are ordered by a per-thread sequence number
 * assigned in the appending transaction (1, 2, 3, ...), so order is the commit order.
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { frameBytesMax } from '../storage/log/frame.js';
import { defineReducer, type TableReader } from '../storage/reducer.js';
import type { Row, TableSchema } from '../storage/schema.js';
import { txRowChangesMax } from '../storage/transaction.js';
import { cursorScope, decodeCursorAs, nextCursorField } from './cursor.js';
import { readTool, writeTool } from './define-tool.js';
import { rowId } from './identifiers.js';
import { jsonBytes } from './json-bytes.js';
import { newestFirstPage } from './newest-first.js';
import { collectPage, pageCursor, pageLimit } from './result-page.js';
import type { ToolDef } from './tool.js';
import { int } from './wire-schema.js';

export const messageContentCharsMax = 32 * 1024;
export const threadTitleCharsMax = 256;
export const authorCharsMax = 256;
export const messagesPerThreadMax = 100_000;
export const chatThreadsMax = 100_000;
/**
 * chat_thread_remove deletes a thread's messages newest first, at most this many (and
 * chatRemoveBytesMax of them) a call: a thread of messagesPerThreadMax long messages does not
 * fit one transaction's frame, so a long thread is removed over several calls.
 */
export const chatRemoveMessagesMax = 10_000;
/** JSON bytes of the message rows one chat_thread_remove deletes (deleted rows are logged whole). */
export const chatRemoveBytesMax = frameBytesMax / 2;
if (chatRemoveMessagesMax + 1 > txRowChangesMax) throw new Error('chatRemoveMessagesMax: the rows one chat_thread_remove deletes would not fit one transaction');

export const chatThreadsTable: TableSchema = {
  name: 'chat_threads',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'title', type: 'string' },
    { name: 'message_count', type: 'int' },
    { name: 'created_at_ms', type: 'int' },
    { name: 'created_by', type: 'string' },
    { name: 'updated_at_ms', type: 'int' },
  ],
  primaryKey: ['id'],
  // chat_threads_list: most recently appended to first (ids are random).
  indexes: [{ name: 'chat_threads_by_updated', columns: ['updated_at_ms'] }],
};

export const chatMessagesTable: TableSchema = {
  name: 'chat_messages',
  columns: [
    { name: 'thread', type: 'string' },
    { name: 'seq', type: 'int' },
    { name: 'role', type: 'string' },
    { name: 'author', type: 'string' },
    { name: 'content', type: 'string' },
    { name: 'at_ms', type: 'int' },
    { name: 'caller', type: 'string' },
  ],
  primaryKey: ['thread', 'seq'],
};

export const messageRoles = ['user', 'assistant', 'system', 'tool'] as const;

export interface ThreadView {
  id: string;
  title: string;
  message_count: number;
  created_at_ms: number;
}

export function threadView(row: Row): ThreadView {
  return {
    id: row['id'] as string,
    title: row['title'] as string,
    message_count: row['message_count'] as number,
    created_at_ms: row['created_at_ms'] as number,
  };
}

export interface MessageView {
  seq: number;
  role: string;
  author: string;
  content: string;
  at_ms: number;
}

export function messageView(row: Row): MessageView {
  return {
    seq: row['seq'] as number,
    role: row['role'] as string,
    author: row['author'] as string,
    content: row['content'] as string,
    at_ms: row['at_ms'] as number,
  };
}

function requireThread(threads: TableReader, id: string, hint?: string): Row {
  const thread = threads.get([id]);
  if (!thread) throw new MemoryError('not_found', `chat thread ${id} does not exist`, hint);
  return thread;
}

const threadCreateArgs = z.object({ title: z.string().max(threadTitleCharsMax).optional() });
const threadCreateResult = z.object({ thread: z.string() });

export const chatThreadCreate = defineReducer({
  name: 'chat_thread_create',
  args: threadCreateArgs,
  run(ctx, a): z.infer<typeof threadCreateResult> {
    const threads = ctx.table('chat_threads');
    if (threads.size >= chatThreadsMax) {
      throw new MemoryError('limit_exceeded', `the tenant has ${threads.size} chat threads, the limit (chatThreadsMax) is ${chatThreadsMax}`,
        'remove threads no longer needed with chat_thread_remove (chat_threads_list lists the least recently appended to last), or go on in a thread there');
    }
    let id = ctx.newId('thr');
    while (threads.get([id])) id = ctx.newId('thr');
    threads.insert({ id, title: a.title ?? '', message_count: 0, created_at_ms: ctx.timestampMs, created_by: ctx.caller.subject, updated_at_ms: ctx.timestampMs });
    return { thread: id };
  },
});

const appendArgs = z.object({
  thread: rowId,
  role: z.enum(messageRoles),
  content: z.string().max(messageContentCharsMax),
  author: z.string().min(1).max(authorCharsMax).optional(),
});
const appendResult = z.object({ seq: int() });

export const chatMessageAppend = defineReducer({
  name: 'chat_message_append',
  args: appendArgs,
  run(ctx, a): z.infer<typeof appendResult> {
    const threads = ctx.table('chat_threads');
    const thread = requireThread(threads, a.thread, 'create one with chat_thread_create');
    const seq = (thread['message_count'] as number) + 1;
    if (seq > messagesPerThreadMax) {
      throw new MemoryError('limit_exceeded', `thread ${a.thread} holds ${messagesPerThreadMax} messages, the most a thread holds (messagesPerThreadMax)`,
        'go on in a new thread (chat_thread_create); this one stays readable');
    }
    ctx.table('chat_messages').insert({
      thread: a.thread, seq, role: a.role, author: a.author ?? ctx.caller.subject, content: a.content,
      at_ms: ctx.timestampMs, caller: ctx.caller.subject,
    });
    threads.update({ ...thread, message_count: seq, updated_at_ms: ctx.timestampMs });
    return { seq };
  },
});

const removeArgs = z.object({ thread: rowId });
const removeResult = z.object({ messages_removed: int(), thread_removed: z.boolean() });

export const chatThreadRemove = defineReducer({
  name: 'chat_thread_remove',
  args: removeArgs,
  run(ctx, a): z.infer<typeof removeResult> {
    const threads = ctx.table('chat_threads');
    const thread = requireThread(threads, a.thread);
    const messages = ctx.table('chat_messages');
    // Newest first: what stays is the thread's first messages, seq 1..n, and an append goes on at n + 1.
    const seqs: number[] = [];
    let bytes = 0;
    for (const m of messages.scan({ prefix: [a.thread], reverse: true })) {
      bytes += jsonBytes(m);
      if (seqs.length === chatRemoveMessagesMax || (seqs.length > 0 && bytes > chatRemoveBytesMax)) break;
      seqs.push(m['seq'] as number);
    }
    for (const seq of seqs) messages.delete([a.thread, seq]);
    const kept = (thread['message_count'] as number) - seqs.length;
    if (kept === 0) threads.delete([a.thread]);
    else threads.update({ ...thread, message_count: kept });
    return { messages_removed: seqs.length, thread_removed: kept === 0 };
  },
});

const messageOutput = z.object({ seq: int(), role: z.string(), author: z.string(), content: z.string(), at_ms: int() });

export const chatTools: ToolDef[] = [
  writeTool({
    reducer: chatThreadCreate, args: threadCreateArgs, result: threadCreateResult, title: 'Create chat thread',
    description: 'Start a chat thread; returns its id.',
  }),
  writeTool({
    reducer: chatMessageAppend, args: appendArgs, result: appendResult, title: 'Append chat message',
    description: 'Append a message (role user|assistant|system|tool) to a thread; returns its sequence number.',
  }),
  writeTool({
    reducer: chatThreadRemove, args: removeArgs, result: removeResult, title: 'Remove chat thread', destructive: true,
    description: `Remove a thread and its messages, newest first, at most ${chatRemoveMessagesMax} a call: repeat (each with its own idempotency_key) until thread_removed.`,
  }),
  readTool({
    name: 'chat_threads_list', title: 'List chat threads', description: 'Chat threads, the most recently appended to first. Paged.',
    input: z.object({ cursor: pageCursor, limit: pageLimit }),
    output: z.object({ threads: z.array(z.object({ thread: z.string(), title: z.string(), message_count: int(), updated_at_ms: int() })), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const query = { index: 'chat_threads_by_updated', equal: [], scope: cursorScope(caller.tenant, 'chat_threads_list'), cursor: a.cursor, limit: a.limit };
      const { items, ...next } = newestFirstPage(view.table('chat_threads'), query,
        (r) => ({ thread: r['id'] as string, title: r['title'] as string, message_count: r['message_count'] as number, updated_at_ms: r['updated_at_ms'] as number }),
        (t) => [t.updated_at_ms, t.thread]);
      return { threads: items, ...next };
    }),
  }),
  readTool({
    name: 'chat_messages_list',
    title: 'List chat messages',
    description: 'Messages of a thread by seq (after_seq: start after it; desc: newest first, below after_seq). Paged.',
    input: z.object({ thread: rowId, after_seq: int(0).optional(), desc: z.boolean().optional(), cursor: pageCursor, limit: pageLimit }),
    output: z.object({ thread: z.string(), title: z.string(), messages: z.array(messageOutput), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const thread = requireThread(view.table('chat_threads'), a.thread);
      const desc = a.desc === true;
      const scope = cursorScope(caller.tenant, 'chat_messages_list', { thread: a.thread, desc });
      const position = a.cursor !== undefined ? decodeCursorAs(scope, a.cursor, int()) : a.after_seq ?? (desc ? Number.MAX_SAFE_INTEGER : 0);
      const range = desc ? { from: [a.thread], to: [a.thread, position] } : { from: [a.thread, position + 1], to: [a.thread], toInclusive: true };
      // After the largest safe seq nothing follows (and position + 1 is no key value).
      const rows = !desc && position >= Number.MAX_SAFE_INTEGER ? [] : view.table('chat_messages').scan({ range, reverse: desc });
      const page = collectPage((function* () { for (const r of rows) yield messageView(r); })(), a.limit);
      return { thread: a.thread, title: thread['title'] as string, messages: page.items, ...nextCursorField(scope, page, (m) => m.seq) };
    }),
  }),
];

export const chatReducers = [chatThreadCreate, chatMessageAppend, chatThreadRemove];
export const chatTables = [chatThreadsTable, chatMessagesTable];
