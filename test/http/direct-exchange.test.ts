/**
 * The answer of a request a 2025-era session serves directly (server/http/direct-exchange.ts):
 * one JSON body unless a message related to the request comes first, then an SSE stream ending
 * with the answer. A unit test on a recording stand-in for the Node response (the end-to-end
 * tests in test/e2e/open-progress.test.ts drive the real server with real clients).
 */
import type { ServerResponse } from 'node:http';
import { expect, test } from 'vitest';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import { DirectExchange } from '../../server/http/direct-exchange.js';

/** What a response was sent: its head and body chunks, and whether it ended. */
class RecordedResponse {
  status: number | undefined;
  headers: Record<string, string> | undefined;
  readonly chunks: string[] = [];
  writableEnded = false;
  destroyed = false;
  /** Set by a test: the client stopped reading what was written. */
  writableNeedDrain = false;
  get headersSent(): boolean {
    return this.status !== undefined;
  }
  writeHead(status: number, headers: Record<string, string>): this {
    expect(this.headersSent, 'a second head').toBe(false);
    this.status = status;
    this.headers = headers;
    return this;
  }
  write(chunk: string): boolean {
    expect(this.writableEnded, 'a write after the end').toBe(false);
    this.chunks.push(chunk);
    return true;
  }
  end(chunk?: string): this {
    if (chunk !== undefined) this.write(chunk);
    this.writableEnded = true;
    return this;
  }
}

const progress = (n: number): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: n } });
const answerJson = JSON.stringify({ jsonrpc: '2.0', id: 7, result: { content: [] } });
const event = (json: string) => `event: message\ndata: ${json}\n\n`;

function exchangeOn(res: RecordedResponse): DirectExchange {
  return new DirectExchange(res as unknown as ServerResponse);
}

test('an answer with nothing before it is one JSON body with its length and the session id', () => {
  const res = new RecordedResponse();
  exchangeOn(res).answer(200, answerJson, 'session-1');
  expect(res.status).toBe(200);
  expect(res.headers).toEqual({ 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(answerJson)), 'mcp-session-id': 'session-1' });
  expect(res.chunks).toEqual([answerJson]);
  expect(res.writableEnded).toBe(true);
});

test('a related message first turns the answer into an SSE stream: the messages, then the answer, then the end', () => {
  const res = new RecordedResponse();
  const exchange = exchangeOn(res);
  exchange.notify(progress(1), 'session-1');
  exchange.notify(progress(2), 'session-1');
  expect(res.status).toBe(200);
  expect(res.headers).toMatchObject({ 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', 'mcp-session-id': 'session-1' });
  expect(res.writableEnded).toBe(false);
  exchange.answer(200, answerJson, 'session-1');
  expect(res.chunks).toEqual([event(JSON.stringify(progress(1))), event(JSON.stringify(progress(2))), event(answerJson)]);
  expect(res.writableEnded).toBe(true);
});

test('on a stream, an answer that fits only a status of its own is sent as the one naming the request', () => {
  const res = new RecordedResponse();
  const exchange = exchangeOn(res);
  exchange.notify(progress(1), 'session-1');
  const forTheBody = JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
  const forTheStream = JSON.stringify({ jsonrpc: '2.0', id: 7, error: { code: -32001, message: 'Session not found' } });
  exchange.answer(404, forTheBody, undefined, forTheStream);
  expect(res.status).toBe(200); // the stream's head was sent with its first event
  expect(res.chunks.at(-1)).toBe(event(forTheStream));
});

test('a message while the client is not reading is dropped; the answer still comes, and nothing is written once the client left', () => {
  const res = new RecordedResponse();
  const exchange = exchangeOn(res);
  exchange.notify(progress(1), 'session-1');
  res.writableNeedDrain = true;
  exchange.notify(progress(2), 'session-1');
  expect(res.chunks).toEqual([event(JSON.stringify(progress(1)))]);
  exchange.answer(200, answerJson, 'session-1');
  expect(res.chunks.at(-1)).toBe(event(answerJson));

  const gone = new RecordedResponse();
  gone.destroyed = true;
  const late = exchangeOn(gone);
  late.notify(progress(1), 'session-1');
  late.answer(200, answerJson, 'session-1');
  expect(gone.status).toBeUndefined();
  expect(gone.chunks).toEqual([]);
});

test('a message held back before the stream began (the client not reading) leaves the answer a JSON body', () => {
  const res = new RecordedResponse();
  res.writableNeedDrain = true;
  const exchange = exchangeOn(res);
  exchange.notify(progress(1), 'session-1');
  res.writableNeedDrain = false;
  exchange.answer(200, answerJson, 'session-1');
  expect(res.headers?.['content-type']).toBe('application/json');
  expect(res.chunks).toEqual([answerJson]);
});
