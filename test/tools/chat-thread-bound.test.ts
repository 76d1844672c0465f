/**
 * A thread holds at most messagesPerThreadMax messages: the append past it is refused naming the
 * bound and the way on (a new thread), writes nothing, and the full thread stays readable.
 * Filled for real, through the tool (about 4 s).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { messagesPerThreadMax } from '../../tools/chat.js';
import { memoryCatalog } from '../../tools/index.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
let thread: string;

beforeAll(async () => {
  f = await openFixture();
  ({ thread } = await f.call('chat_thread_create', { title: 'long' }));
  const chunk = 2000;
  for (let i = 0; i < messagesPerThreadMax; i += chunk) {
    await Promise.all(Array.from({ length: Math.min(chunk, messagesPerThreadMax - i) }, (_, j) => f.call('chat_message_append', { thread, role: 'user', content: `m${i + j}` })));
  }
}, 120_000);
afterAll(() => f.close());

test(`past messagesPerThreadMax (${messagesPerThreadMax}) an append is refused naming the bound and a new thread; the thread stays readable`, async () => {
  const refused = await expectRefused(f, f.call('chat_message_append', { thread, role: 'user', content: 'one more' }), 'limit_exceeded',
    new RegExp(`thread ${thread} holds ${messagesPerThreadMax} messages, the most a thread holds \\(messagesPerThreadMax\\)`));
  expect(refused.hint).toMatch(/chat_thread_create/);
  const newest = await f.call('chat_messages_list', { thread, desc: true, limit: 2 });
  expect(newest.messages.map((m: { seq: number; content: string }) => [m.seq, m.content])).toEqual([[messagesPerThreadMax, expect.any(String)], [messagesPerThreadMax - 1, expect.any(String)]]);
  const resource = JSON.parse((await memoryCatalog.read(f.memory, `memory://chat/${thread}`)).text);
  expect(resource.message_count).toBe(messagesPerThreadMax);
  // The way on works: a new thread takes the message.
  const next = await f.call('chat_thread_create', { title: 'long, continued' });
  expect(await f.call('chat_message_append', { thread: next.thread, role: 'user', content: 'one more' })).toMatchObject({ seq: 1 });
});
