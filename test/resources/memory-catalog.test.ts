import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { TxRecord } from '../../storage/changes.js';
import { memoryCatalog } from '../../tools/index.js';
import { resultBytesMax } from '../../tools/tool.js';
import { formatMemoryUri, parseMemoryUri } from '../../resources/memory-uri.js';
import { expectRefused, openFixture, type Fixture } from '../tools/memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

async function listAll(): Promise<string[]> {
  const uris: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await memoryCatalog.list(f.memory, cursor);
    expect(page.resources.length).toBeLessThanOrEqual(100);
    uris.push(...page.resources.map((r) => r.uri));
    cursor = page.nextCursor;
  } while (cursor);
  return uris;
}

/** Every resource's current text, by URI. */
async function readAll(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const uri of await listAll()) out.set(uri, (await memoryCatalog.read(f.memory, uri)).text);
  return out;
}

describe('memory:// URIs', () => {
  test('parse strictly: scheme, kind, one id segment matching its pattern, no query or fragment', () => {
    expect(parseMemoryUri('memory://objects/a%3Ab')).toEqual({ kind: 'objects', id: 'a:b' });
    expect(formatMemoryUri('objects', 'a:b')).toBe('memory://objects/a%3Ab');
    for (const bad of ['file:///etc/passwd', 'memory:/objects/a', 'memory://objects/', 'memory://objects/a/b',
      'memory://objects/..%2F..%2Fetc', 'memory://objects/a?x=1', 'memory://objects/a#f', 'memory://objects/%E0%A4%A', `memory://objects/${'a'.repeat(600)}`]) {
      expect(() => parseMemoryUri(bad), bad).toThrow(expect.objectContaining({ code: 'invalid_argument' }));
    }
    expect(() => parseMemoryUri('memory://secrets/a')).toThrow(expect.objectContaining({ code: 'not_found' }));
  });

  test('one template per served table', () => {
    expect(memoryCatalog.templates.map((t) => t.uriTemplate)).toEqual([
      'memory://objects/{id}', 'memory://types/{id}', 'memory://chat/{id}', 'memory://bpmn/{id}', 'memory://sessions/{id}', 'memory://ar/{id}',
    ]);
    for (const t of memoryCatalog.templates) expect(t.mimeType).toBe('application/json');
  });
});

describe('list and read', () => {
  test('list pages through one resource per row of every served table; each reads as JSON', async () => {
    await f.call('type_define', { name: 'note', schema: { type: 'object' } });
    for (let i = 0; i < 130; i++) await f.call('object_put', { id: `n${String(i).padStart(3, '0')}`, type: 'note', attributes: { i } });
    const { thread } = await f.call('chat_thread_create', { title: 'T' });
    await f.call('chat_message_append', { thread, role: 'user', content: 'hi' });
    const { instance } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
    const { session } = await f.call('session_start', { agent: 'a' });
    await f.call('ar_observe', { surface: 'desk', pose: [0, 0, 0, 0, 0, 0, 1] });
    const uris = await listAll();
    expect(uris).toHaveLength(130 + 5);
    expect(new Set(uris).size).toBe(uris.length);
    expect(uris).toContain('memory://types/note');
    expect(uris).toContain(`memory://chat/${thread}`);
    expect(uris).toContain(`memory://bpmn/${instance}`);
    expect(uris).toContain(`memory://sessions/${session}`);
    expect(uris).toContain('memory://ar/desk');
    expect(JSON.parse((await memoryCatalog.read(f.memory, 'memory://objects/n007')).text)).toMatchObject({ id: 'n007', type: 'note', attributes: { i: 7 }, version: 1 });
    expect(JSON.parse((await memoryCatalog.read(f.memory, `memory://chat/${thread}`)).text)).toMatchObject({ title: 'T', messages: [{ seq: 1, content: 'hi' }] });
    expect(JSON.parse((await memoryCatalog.read(f.memory, `memory://bpmn/${instance}`)).text)).toMatchObject({ state: 'running', tokens: [{ node: 's' }] });
  });

  test('unknown and malformed URIs, and forged cursors, are refused', async () => {
    await expectRefused(f, memoryCatalog.read(f.memory, 'memory://objects/absent'), 'not_found');
    await expectRefused(f, memoryCatalog.read(f.memory, 'memory://tables/objects'), 'not_found');
    await expectRefused(f, memoryCatalog.read(f.memory, 'http://objects/x'), 'invalid_argument');
    await expectRefused(f, memoryCatalog.read(f.memory, 'memory://objects/..%2Fx'), 'invalid_argument');
    for (let i = 0; i < 120; i++) await f.call('object_put', { id: `o${i}`, type: 't', attributes: {} });
    const page = await memoryCatalog.list(f.memory);
    expect(page.nextCursor).toBeDefined();
    await expectRefused(f, memoryCatalog.list(f.memory, `${page.nextCursor!.slice(0, -3)}abc`), 'invalid_argument');
    await expectRefused(f, memoryCatalog.list(f.memory, 'garbage'), 'invalid_argument');
  });

  test('a chat thread resource stays within the result bound however large its messages', async () => {
    const { thread } = await f.call('chat_thread_create', {});
    for (let i = 0; i < 20; i++) await f.call('chat_message_append', { thread, role: 'user', content: 'x'.repeat(30_000) });
    const content = await memoryCatalog.read(f.memory, `memory://chat/${thread}`);
    expect(Buffer.byteLength(content.text)).toBeLessThanOrEqual(resultBytesMax);
    const messages = JSON.parse(content.text).messages as { seq: number }[];
    expect(messages.at(-1)!.seq).toBe(20);
  });
});

describe('changedUris', () => {
  test('maps each durable transaction to exactly the URIs whose read changed', async () => {
    const txs: TxRecord[] = [];
    f.memory.store.onCommit((batch) => txs.push(...batch));
    const steps: (() => Promise<unknown>)[] = [
      () => f.call('type_define', { name: 'person', schema: { type: 'object' } }),
      () => f.call('object_put', { id: 'ann', type: 'person', attributes: { n: 1 } }),
      () => f.call('object_put', { id: 'bo', type: 'person', attributes: {} }),
      () => f.call('object_link', { src: 'ann', kind: 'knows', dst: 'bo' }),
      () => f.call('embedding_put', { object_id: 'ann', model: 'm', vector: [1, 0] }),
      () => f.call('object_patch', { id: 'ann', set: { n: 2 } }),
      () => f.call('object_delete', { id: 'ann' }),
      () => f.call('chat_thread_create', { title: 'x' }),
      async () => {
        const thread = (await listAll()).find((u) => u.startsWith('memory://chat/'))!.slice('memory://chat/'.length);
        return f.call('chat_message_append', { thread: decodeURIComponent(thread), role: 'user', content: 'hello' });
      },
      async () => {
        const { instance, token } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
        await f.call('bpmn_move_token', { instance, token, to: 'review', user_task: { name: 'Review' } });
        await f.call('bpmn_complete_task', { instance, task: 'task_1' });
        return f.call('bpmn_complete', { instance });
      },
      async () => {
        const { session } = await f.call('session_start', { agent: 'bot' });
        return f.call('session_end', { session, outcome: 'completed' });
      },
      () => f.call('ar_observe', { surface: 'desk', pose: [0, 0, 0, 0, 0, 0, 1], observed_at_ms: 10 }),
      () => f.call('ar_observe', { surface: 'desk', pose: [1, 0, 0, 0, 0, 0, 1], observed_at_ms: 5 }),
      () => f.memory.store.call('access_log_append', { subject: 's', action: 'a', target: 't', outcome: 'ok' }, { tenant: 'acme', subject: 'server' }),
    ];
    for (const step of steps) {
      // One transaction at a time: read everything before and after it and compare.
      let before = await readAll();
      const run = step();
      await run;
      const after = await readAll();
      expect(txs.length).toBeGreaterThan(0);
      const perTx: TxRecord[] = txs.splice(0);
      if (perTx.length > 1) {
        // Multi-transaction steps: the union of their URIs must cover the change, and each tx's URIs must each have changed at some point.
        const claimed = new Set(perTx.flatMap((tx) => memoryCatalog.changedUris(tx)));
        for (const uri of new Set([...before.keys(), ...after.keys()])) {
          if (before.get(uri) !== after.get(uri)) expect(claimed.has(uri), `${uri} changed but was not reported`).toBe(true);
        }
        continue;
      }
      const changed = [...new Set([...before.keys(), ...after.keys()])].filter((uri) => before.get(uri) !== after.get(uri)).sort();
      expect(memoryCatalog.changedUris(perTx[0]!).sort()).toEqual(changed);
      before = after;
    }
  });
});
