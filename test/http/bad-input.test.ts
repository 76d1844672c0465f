/**
 * Bad input over Streamable HTTP that the SDK's own checks do not cover: each gets a clear
 * JSON-RPC error, nothing hangs, and the session keeps serving.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { holdNotePuts, notePut } from '../mcp/fixtures/notes.js';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';
import { toolArgumentsDepthMax } from '../../server/mcp/limits.js';
import { connectNewerHttp, connectOlderHttp } from '../support/mcp-clients.js';
import { openSession, post } from '../support/raw-http-session.js';

let serving: NotesHttp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await serving?.serving.close();
  serving = undefined;
});

const call = (id: number, name: string, args: unknown) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

describe('bad input over Streamable HTTP', () => {
  test('a request id already in flight on the session: refused at once with -32600; the first still gets its own answer', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    // Hold the first call until the second has been answered, so both are surely in flight together.
    const release = holdNotePuts();
    const first = post(url, call(7, 'note_put', { id: 'a', text: 'first' }), session);
    await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(1)); // the first is held inside its call
    const second = await post(url, call(7, 'note_put', { id: 'b', text: 'second' }), session);
    expect(second.status).toBe(400);
    const refused = await second.json() as { id: number; error: { code: number; message: string } };
    expect(refused).toMatchObject({ id: 7, error: { code: -32600 } });
    expect(refused.error.message).toContain('already in flight');
    release();
    const answered = await (await first).json() as { id: number; result: { structuredContent: { id: string } } };
    expect(answered).toMatchObject({ id: 7, result: { structuredContent: { id: 'a' } } });
    // Nothing of the refused request ran; the session goes on.
    expect(serving.memory.notes.notes.has('b')).toBe(false);
    expect((await post(url, call(8, 'note_get', { id: 'a' }), session)).status).toBe(200);
  });

  test('an id in flight on the other path (the direct one, or the SDK transport\'s) is refused too: neither request takes the other\'s answer', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const session = await openSession(url);
    // A _meta key of MCP's reserved namespace sends a request through the SDK transport (directRequestOf).
    const viaSdk = (id: number, method: string, params: Record<string, unknown> = {}) =>
      ({ jsonrpc: '2.0', id, method, params: { ...params, _meta: { 'io.modelcontextprotocol/related': 1 } } });
    const release = holdNotePuts();
    const direct = post(url, call(7, 'note_put', { id: 'a', text: 'direct' }), session);
    await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(1));
    const sdkSame = await post(url, viaSdk(7, 'ping'), session);
    expect(sdkSame.status).toBe(400);
    expect(await sdkSame.json()).toMatchObject({ id: 7, error: { code: -32600, message: expect.stringContaining('already in flight') } });
    const sdk = post(url, viaSdk(9, 'tools/call', { name: 'note_put', arguments: { id: 'b', text: 'sdk' } }), session);
    await vi.waitFor(() => expect(vi.mocked(notePut.call)).toHaveBeenCalledTimes(2));
    const directSame = await post(url, { jsonrpc: '2.0', id: 9, method: 'ping' }, session);
    expect(directSame.status).toBe(400);
    expect(await directSame.json()).toMatchObject({ id: 9, error: { code: -32600 } });
    release();
    expect(await (await direct).json()).toMatchObject({ id: 7, result: { structuredContent: { id: 'a' } } });
    expect(await (await sdk).json()).toMatchObject({ id: 9, result: { structuredContent: { id: 'b' } } });
  });

  test('a path nothing serves (an empty tenant segment, a typo) is a JSON 404 naming the MCP paths', async () => {
    serving = await startNotesHttp();
    for (const path of ['/t//mcp', '/mpc', '/t/acme/mcpx']) {
      const answer = await fetch(`${serving.serving.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(answer.status).toBe(404);
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
      expect(((await answer.json()) as { message: string }).message).toContain('/mcp');
    }
  });

  test('a body the parser refuses for the client (charset, encoding) is a 4xx naming why, not a 500', async () => {
    serving = await startNotesHttp();
    const url = `${serving.serving.url}/mcp`;
    const ping = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
    const charset = await post(url, ping, { 'content-type': 'application/json; charset=latin1' });
    expect(charset.status).toBe(415);
    expect(((await charset.json()) as { error: { message: string } }).error.message).toMatch(/charset/i);
    const encoding = await post(url, ping, { 'content-encoding': 'br-nonsense' });
    expect(encoding.status).toBe(415);
    expect(((await encoding.json()) as { error: { message: string } }).error.message).toMatch(/encoding/i);
  });

  test('arguments a real client sends with a lone surrogate or nested past the limit: named refusals, nothing written', async () => {
    serving = await startNotesHttp();
    const client = await connectOlderHttp({ url: `${serving.serving.url}/mcp` });
    try {
      const lone = await client.callTool('note_put', { id: 'k\ud800', text: 'x' });
      expect(lone.isError).toBe(true);
      expect(JSON.stringify(lone.structuredContent ?? lone.content)).toContain('lone UTF-16 surrogate');
      let deep: unknown = 'leaf';
      for (let i = 0; i < toolArgumentsDepthMax + 1; i++) deep = [deep];
      const nested = await client.callTool('note_put', { id: 'deep', text: 'x', extra: deep });
      expect(nested.isError).toBe(true);
      expect(JSON.stringify(nested.structuredContent ?? nested.content)).toContain('toolArgumentsDepthMax');
      // A "__proto__" key (as JSON.parse makes it: an own key) would be dropped on the way to the log.
      const proto = await client.callTool('note_put', JSON.parse('{"id":"p","text":"x","extra":{"__proto__":{"role":"admin"}}}') as Record<string, unknown>);
      expect(proto.isError).toBe(true);
      expect(JSON.stringify(proto.structuredContent ?? proto.content)).toMatch(/\.extra has the key .*__proto__.*rename the key/);
      expect(serving.memory.notes.notes.size).toBe(0);
      // A proper pair (an emoji) is text like any other.
      expect((await client.callTool('note_put', { id: 'ok', text: 'hi \ud83d\ude00' })).isError).toBeFalsy();
    } finally {
      await client.close();
    }
  });

  test('resources/subscribe to a URI no resource can have is refused, and does not use up the quota', async () => {
    serving = await startNotesHttp();
    const client = await connectOlderHttp({ url: `${serving.serving.url}/mcp` });
    try {
      await expect(client.watchResource('file:///etc/passwd')).rejects.toThrow(/not a note URI/);
      await client.watchResource('memory://notes/n1'); // absent, but it may appear: allowed
    } finally {
      await client.close();
    }
    // The same check for a 2026-era subscriptions/listen stream.
    const newer = await connectNewerHttp({ url: `${serving.serving.url}/mcp` });
    try {
      await expect(newer.watchResource('file:///etc/passwd')).rejects.toThrow(/not a note URI/);
    } finally {
      await newer.close();
    }
  });
});
