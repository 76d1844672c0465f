/**
 * The HTTP server tells the inline-fdatasync rule (storage/log/inline-sync.ts) who is calling:
 * each connection with a request is one active caller, however many requests it sends; many
 * connections at once keep a lone batch's fdatasync off the event loop. Real server on
 * 127.0.0.1, port 0; the caller windows' clock is frozen so no window passes mid-test.
 */
import http from 'node:http';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { activeCallers, callerClock, inlineSyncCallersMax } from '../../storage/log/inline-sync.js';
import { startNotesHttp, type NotesHttp } from '../mcp/fixtures/http-fixture.js';

let serving: NotesHttp | undefined;
const realClock = callerClock.nowMs;
let nowMs = 0;

beforeEach(() => {
  nowMs += 1_000_000; // a fresh window, far from any other test's
  callerClock.nowMs = () => nowMs;
});
afterEach(async () => {
  callerClock.nowMs = realClock;
  await serving?.serving.close();
  serving = undefined;
});

/** One GET /healthz on the given agent's connection; resolves with the status once answered. */
function get(base: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(`${base}/healthz`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

describe('HTTP connections as callers of the inline-fdatasync rule', () => {
  test('each connection with a request counts once; more of them than inlineSyncCallersMax make the thread busy', async () => {
    serving = await startNotesHttp();
    const base = serving.serving.url;
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 5; i++) await get(base, keepAlive); // one keep-alive connection, five requests
      expect(activeCallers()).toBe(1);
      const others = inlineSyncCallersMax + 1;
      for (let i = 0; i < others; i++) await get(base, new http.Agent({ keepAlive: false })); // a connection each
      expect(activeCallers()).toBe(1 + others);
      expect(activeCallers()).toBeGreaterThan(inlineSyncCallersMax);
    } finally {
      keepAlive.destroy();
    }
  });
});
