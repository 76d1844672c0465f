/**
 * Answers held to the end of the poll phase (server/http/write-coalescing.ts): what is written
 * to a held socket leaves in one go at the next check phase, never later, never lost — also
 * when the hold is taken in a check phase; a lone caller's writes are not held. Real TCP sockets
 * on 127.0.0.1; the caller windows' clock (storage/log/inline-sync.ts) is frozen.
 */
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { holdWritesUntilPollEnd } from '../../server/http/write-coalescing.js';
import { callerActive, callerClock } from '../../storage/log/inline-sync.js';

const closers: Array<() => void> = [];
const realClock = callerClock.nowMs;
let nowMs = 0;
beforeEach(() => {
  nowMs += 1_000_000; // a fresh caller window for each test
  callerClock.nowMs = () => nowMs;
});
afterEach(() => {
  callerClock.nowMs = realClock;
  for (const close of closers.splice(0)) close();
});

/** A connected pair: the server side's socket and everything the client side receives. */
async function socketPair(): Promise<{ serverSide: net.Socket; received: () => string; receivedLength: (n: number) => Promise<void> }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection');
  const client = net.connect(port, '127.0.0.1');
  const [serverSide] = (await accepted) as [net.Socket];
  let text = '';
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  client.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    for (const w of waiters.filter((x) => text.length >= x.n)) w.resolve();
  });
  closers.push(() => {
    client.destroy();
    serverSide.destroy();
    server.close();
  });
  return {
    serverSide,
    received: () => text,
    receivedLength: (n) => (text.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

const checkPhase = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('answers held to the end of the poll phase', () => {
  test('writes to held sockets stay buffered until the next check phase, then leave whole and in order', async () => {
    const a = await socketPair();
    const b = await socketPair();
    callerActive(a.serverSide);
    callerActive(b.serverSide);
    holdWritesUntilPollEnd(a.serverSide);
    a.serverSide.write('HTTP/1.1 200 OK\r\n\r\n');
    a.serverSide.write('{"a":1}');
    holdWritesUntilPollEnd(b.serverSide);
    holdWritesUntilPollEnd(b.serverSide); // held once: one cork, one uncork
    b.serverSide.write('{"b":2}');
    expect(a.serverSide.writableLength).toBeGreaterThan(0);
    expect(b.serverSide.writableLength).toBeGreaterThan(0);
    await checkPhase();
    expect(a.serverSide.writableCorked).toBe(0);
    expect(b.serverSide.writableCorked).toBe(0);
    await Promise.all([a.receivedLength('HTTP/1.1 200 OK\r\n\r\n{"a":1}'.length), b.receivedLength(7)]);
    expect(a.received()).toBe('HTTP/1.1 200 OK\r\n\r\n{"a":1}');
    expect(b.received()).toBe('{"b":2}');
  });

  test('a hold taken in a check phase is flushed by the next one; later writes go out unheld', async () => {
    const a = await socketPair();
    callerActive(a.serverSide);
    callerActive({}); // another caller: answers are worth holding
    await checkPhase();
    holdWritesUntilPollEnd(a.serverSide);
    a.serverSide.write('late');
    await checkPhase();
    await a.receivedLength(4);
    expect(a.serverSide.writableCorked).toBe(0);
    a.serverSide.write('!');
    await a.receivedLength(5);
    expect(a.received()).toBe('late!');
  });

  test('a lone caller\'s writes are not held: nothing to write them with', async () => {
    const a = await socketPair();
    callerActive(a.serverSide);
    holdWritesUntilPollEnd(a.serverSide);
    expect(a.serverSide.writableCorked).toBe(0);
    a.serverSide.write('now');
    await a.receivedLength(3);
    expect(a.received()).toBe('now');
  });
});
