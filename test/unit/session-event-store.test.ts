/**
 * The event store of a session's GET stream (server/http/session-event-store.ts): numbering, the
 * two bounds, where a reconnect resumes, and the refusals.
 */
import { describe, expect, test } from 'vitest';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import { SessionEventStore } from '../../server/http/session-event-store.js';

const note = (n: number, pad = 0): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: `memory://notes/${n}${'x'.repeat(pad)}` } });

async function replayed(store: SessionEventStore, after: string): Promise<string[]> {
  const ids: string[] = [];
  await store.replayEventsAfter(after, { send: async (id) => void ids.push(id) });
  return ids;
}

describe('SessionEventStore', () => {
  test('numbers events from 1 and replays those after the id given, in order', async () => {
    const store = new SessionEventStore();
    for (let i = 1; i <= 5; i++) expect(await store.storeEvent('_GET_stream', note(i))).toBe(String(i));
    expect(await replayed(store, '2')).toEqual(['3', '4', '5']);
    expect(await replayed(store, '5')).toEqual([]);
    expect(await replayed(store, '0')).toEqual(['1', '2', '3', '4', '5']);
  });

  test('keeps the newest within the event count and the byte bound; a resume needing a dropped event is lost', async () => {
    const byCount = new SessionEventStore(3, 1 << 20);
    for (let i = 1; i <= 5; i++) await byCount.storeEvent('s', note(i));
    expect(await replayed(byCount, '2')).toEqual(['3', '4', '5']);
    await expect(replayed(byCount, '1')).rejects.toThrow(/no replay after event 1/);
    expect(byCount.resumeFrom('1').kind).toBe('lost');
    expect(byCount.resumeFrom('2')).toEqual({ kind: 'replay', afterId: '2' });

    const byBytes = new SessionEventStore(100, 3 * JSON.stringify(note(1, 100)).length);
    for (let i = 1; i <= 9; i++) await byBytes.storeEvent('s', note(i, 100));
    expect(await replayed(byBytes, '6')).toEqual(['7', '8', '9']);
    expect(byBytes.resumeFrom('5')).toMatchObject({ kind: 'lost', message: expect.stringContaining('sessionEventBytesMax') });
  });

  test('a GET without Last-Event-ID resumes after the events there were when the previous GET was asked for', async () => {
    const store = new SessionEventStore(4, 1 << 20);
    expect(store.resumeFrom(undefined)).toEqual({ kind: 'fresh' });
    await store.storeEvent('s', note(1));
    await store.storeEvent('s', note(2));
    expect(store.resumeFrom(undefined)).toEqual({ kind: 'replay', afterId: '0' });
    await store.storeEvent('s', note(3));
    expect(store.resumeFrom(undefined)).toEqual({ kind: 'replay', afterId: '2' });
    expect(store.resumeFrom(undefined)).toEqual({ kind: 'fresh' });
    for (let i = 4; i <= 9; i++) await store.storeEvent('s', note(i));
    expect(store.resumeFrom(undefined)).toMatchObject({ kind: 'lost' });
  });

  test('an id that names no event is malformed, and does not move the resume point', async () => {
    const store = new SessionEventStore();
    await store.storeEvent('s', note(1));
    for (const id of ['abc', '-1', '1.0', '01', '2', '99999999999999999999']) {
      expect(store.resumeFrom(id)).toMatchObject({ kind: 'malformed', message: expect.stringContaining('is not an event of this session') });
    }
    expect(store.resumeFrom('')).toEqual({ kind: 'replay', afterId: '0' }); // empty: none, as in SSE
  });

  test('refuses the events of a second stream', async () => {
    const store = new SessionEventStore();
    await store.storeEvent('_GET_stream', note(1));
    await expect(store.storeEvent('other', note(2))).rejects.toThrow(/besides _GET_stream/);
  });
});
