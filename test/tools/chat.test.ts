import { afterEach, beforeEach, expect, test } from 'vitest';
import { chatRemoveBytesMax, messageContentCharsMax } from '../../tools/chat.js';
import { frameBytesMax } from '../../storage/log/frame.js';
import { memoryCatalog } from '../../tools/index.js';
import { bob, expectRefused, openFixture, reopenChecked, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

test('messages get consecutive sequence numbers in commit order and list in that order, paged', async () => {
  const { thread } = await f.call('chat_thread_create', { title: 'Planning' });
  expect(thread).toMatch(/^thr_/);
  const roles = ['system', 'user', 'assistant', 'tool', 'user'] as const;
  const appended = await Promise.all(roles.map((role, i) => f.call('chat_message_append', { thread, role, content: `m${i}` })));
  expect(appended.map((a) => a.seq).sort()).toEqual([1, 2, 3, 4, 5]);
  // Commit order is seq order: offsets rise with seq.
  const bySeq = [...appended].sort((a, b) => a.seq - b.seq);
  expect(bySeq.map((a) => a.offset)).toEqual([...bySeq.map((a) => a.offset)].sort((a, b) => a - b));
  const first = await f.call('chat_messages_list', { thread, limit: 2 });
  expect(first.title).toBe('Planning');
  expect(first.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2]);
  const rest = await f.call('chat_messages_list', { thread, limit: 10, cursor: first.next_cursor });
  expect(rest.messages.map((m: { seq: number }) => m.seq)).toEqual([3, 4, 5]);
  expect(rest.next_cursor).toBeUndefined();
  const newest = await f.call('chat_messages_list', { thread, desc: true, limit: 2 });
  expect(newest.messages.map((m: { seq: number }) => m.seq)).toEqual([5, 4]);
  const older = await f.call('chat_messages_list', { thread, desc: true, limit: 2, cursor: newest.next_cursor });
  expect(older.messages.map((m: { seq: number }) => m.seq)).toEqual([3, 2]);
  const after3 = await f.call('chat_messages_list', { thread, after_seq: 3 });
  expect(after3.messages.map((m: { seq: number }) => m.seq)).toEqual([4, 5]);
  // The largest after_seq the argument takes: nothing can follow it (was an internal key error naming 2^53).
  for (const desc of [false, true]) {
    const atEnd = await f.call('chat_messages_list', { thread, after_seq: Number.MAX_SAFE_INTEGER, desc });
    expect(atEnd.messages.map((m: { seq: number }) => m.seq)).toEqual(desc ? [5, 4, 3, 2, 1] : []);
  }
});

test('the author defaults to the caller; content and role are checked; unknown threads are not_found', async () => {
  const { thread } = await f.call('chat_thread_create', {});
  await f.call('chat_message_append', { thread, role: 'user', content: 'hi' }, bob);
  await f.call('chat_message_append', { thread, role: 'assistant', content: 'hello', author: 'claude' });
  const list = await f.call('chat_messages_list', { thread });
  expect(list.messages.map((m: { author: string; role: string; content: string }) => [m.author, m.role, m.content]))
    .toEqual([['bob', 'user', 'hi'], ['claude', 'assistant', 'hello']]);
  await expectRefused(f, f.call('chat_message_append', { thread, role: 'wizard', content: 'x' }), 'invalid_argument');
  await expectRefused(f, f.call('chat_message_append', { thread, role: 'user', content: 'x'.repeat(messageContentCharsMax + 1) }), 'invalid_argument');
  await expectRefused(f, f.call('chat_message_append', { thread: 'thr_nope', role: 'user', content: 'x' }), 'not_found');
  await expectRefused(f, f.call('chat_messages_list', { thread: 'thr_nope' }), 'not_found');
  await expectRefused(f, f.call('chat_messages_list', { thread, cursor: 'forged.cursor' }), 'invalid_argument');
});

test('a retried append with the same idempotency key appends once', async () => {
  const { thread } = await f.call('chat_thread_create', {});
  const first = await f.call('chat_message_append', { thread, role: 'user', content: 'once', idempotency_key: 'msg-1' });
  const again = await f.call('chat_message_append', { thread, role: 'user', content: 'once', idempotency_key: 'msg-1' });
  expect(again).toEqual(first);
  expect((await f.call('chat_messages_list', { thread })).messages).toHaveLength(1);
});

test('chat_threads_list pages every thread, the most recently appended to first (ties by id), the same after a reopen from a snapshot', async () => {
  let nowMs = 1000;
  const g = await openFixture({ clock: () => nowMs });
  try {
    const ids: Record<string, string> = {};
    for (const [name, at] of [['a', 1000], ['b', 2000], ['c', 2000], ['d', 2000]] as const) {
      nowMs = at;
      ids[name] = (await g.call('chat_thread_create', { title: name })).thread;
    }
    nowMs = 3000;
    await g.call('chat_message_append', { thread: ids['a']!, role: 'user', content: 'back to a' });
    const tied = [ids['b']!, ids['c']!, ids['d']!].sort().reverse();
    const want = [ids['a']!, ...tied];
    const walk = async () => {
      const seen: { thread: string; title: string; message_count: number; updated_at_ms: number }[] = [];
      let cursor: string | undefined;
      do {
        const page = await g.call('chat_threads_list', { limit: 1, ...(cursor ? { cursor } : {}) });
        seen.push(...page.threads);
        cursor = page.next_cursor;
      } while (cursor);
      return seen;
    };
    const listed = await walk();
    expect(listed.map((t) => t.thread)).toEqual(want);
    expect(listed[0]).toEqual({ thread: ids['a'], title: 'a', message_count: 1, updated_at_ms: 3000 });
    await g.memory.store.snapshot();
    await g.reopen();
    expect(await walk()).toEqual(listed);
    await expectRefused(g, g.call('chat_threads_list', { cursor: 'forged.cursor' }), 'invalid_argument');
  } finally {
    await g.close();
  }
});

test('chat_thread_remove removes a thread with its messages: reads, the list and its resource no longer find it, watchers hear of it', async () => {
  const { thread } = await f.call('chat_thread_create', { title: 'gone' });
  const { thread: kept } = await f.call('chat_thread_create', { title: 'kept' });
  for (let i = 0; i < 3; i++) await f.call('chat_message_append', { thread, role: 'user', content: `m${i}` });
  const announced: string[] = [];
  const stop = f.memory.store.onCommit((txs) => { for (const tx of txs) announced.push(...memoryCatalog.changedUris(tx)); });
  expect(await f.call('chat_thread_remove', { thread })).toEqual({ messages_removed: 3, thread_removed: true, offset: f.memory.store.lastOffset });
  stop();
  expect(announced).toEqual([`memory://chat/${thread}`]);
  await expectRefused(f, f.call('chat_messages_list', { thread }), 'not_found');
  await expectRefused(f, f.call('chat_message_append', { thread, role: 'user', content: 'x' }), 'not_found');
  await expectRefused(f, f.call('chat_thread_remove', { thread }), 'not_found');
  await expect(memoryCatalog.read(f.memory, `memory://chat/${thread}`)).rejects.toMatchObject({ code: 'not_found' });
  expect((await f.call('chat_threads_list', {})).threads.map((t: { thread: string }) => t.thread)).toEqual([kept]);
  await reopenChecked(f, true);
  expect((await f.call('chat_threads_list', {})).threads.map((t: { thread: string }) => t.thread)).toEqual([kept]);
});

test('a thread too heavy for one transaction is removed over several calls, newest first: between them it is a whole thread that takes appends', async () => {
  const { thread } = await f.call('chat_thread_create', {});
  // 3 UTF-8 bytes a character: the thread's messages weigh more than one log frame (frameBytesMax).
  const content = '€'.repeat(messageContentCharsMax);
  const count = Math.ceil(frameBytesMax / (3 * messageContentCharsMax)) + 20;
  expect(count * 3 * messageContentCharsMax).toBeGreaterThan(2 * chatRemoveBytesMax);
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => f.call('chat_message_append', { thread, role: 'user', content })));
  const first = await f.call('chat_thread_remove', { thread });
  expect(first.thread_removed).toBe(false);
  expect(first.messages_removed).toBeGreaterThan(0);
  const left = count - first.messages_removed;
  const oldest = await f.call('chat_messages_list', { thread, desc: true, limit: 1 });
  expect(oldest.messages.map((m: { seq: number }) => m.seq)).toEqual([left]);
  expect(JSON.parse((await memoryCatalog.read(f.memory, `memory://chat/${thread}`)).text).message_count).toBe(left);
  expect(await f.call('chat_message_append', { thread, role: 'user', content: 'meanwhile' })).toMatchObject({ seq: left + 1 });
  let removed = first.messages_removed;
  for (let calls = 0; ; calls++) {
    expect(calls, 'calls to remove the rest').toBeLessThan(5);
    const next = await f.call('chat_thread_remove', { thread });
    removed += next.messages_removed;
    if (next.thread_removed) break;
  }
  expect(removed).toBe(count + 1);
  await expectRefused(f, f.call('chat_messages_list', { thread }), 'not_found');
  await reopenChecked(f, false);
}, 60_000);
