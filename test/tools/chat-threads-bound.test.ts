/**
 * Past chatThreadsMax threads a new one is refused naming the limit and the way out; the threads
 * there go on taking messages, and removing one makes room for a new one.
 * Filled for real, through the tool.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { chatThreadsMax } from '../../tools/chat.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
let first: string;

beforeAll(async () => {
  f = await openFixture();
  ({ thread: first } = await f.call('chat_thread_create', { title: 'first' }));
  const chunk = 2000;
  for (let i = 1; i < chatThreadsMax; i += chunk) {
    await Promise.all(Array.from({ length: Math.min(chunk, chatThreadsMax - i) }, () => f.call('chat_thread_create', {})));
  }
}, 120_000);
afterAll(() => f.close());

test(`past chatThreadsMax (${chatThreadsMax}) a new thread is refused naming the limit and what to do`, async () => {
  const refused = await expectRefused(f, f.call('chat_thread_create', { title: 'one more' }), 'limit_exceeded',
    new RegExp(`the tenant has ${chatThreadsMax} chat threads, the limit \\(chatThreadsMax\\) is ${chatThreadsMax}`));
  expect(refused.hint).toMatch(/remove threads no longer needed with chat_thread_remove/);
  expect(await f.call('chat_message_append', { thread: first, role: 'user', content: 'still here' })).toMatchObject({ seq: 1 });
  expect(await f.call('chat_thread_remove', { thread: first })).toMatchObject({ messages_removed: 1, thread_removed: true });
  const { thread } = await f.call('chat_thread_create', { title: 'one more' });
  expect(await f.call('chat_message_append', { thread, role: 'user', content: 'in the new one' })).toMatchObject({ seq: 1 });
  await expectRefused(f, f.call('chat_thread_create', {}), 'limit_exceeded');
});
