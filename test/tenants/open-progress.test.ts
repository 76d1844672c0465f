/**
 * OpenProgress (who hears a tenant's store open) and progressNotifier (how a report becomes an
 * MCP progress notification): in-process, beside the real-server test in test/e2e/open-progress.test.ts.
 */
import type { Notification } from '@modelcontextprotocol/server';
import { describe, expect, test } from 'vitest';
import { progressNotifier, progressNotifyMsMin, withOpenProgress } from '../../server/mcp/progress-notifications.js';
import { OpenProgress, openProgressListenersMax } from '../../server/tenants/open-progress.js';

type Report = [phase: string, done: number, total: number];

describe('OpenProgress', () => {
  test("each request listening under a tenant hears that tenant's open, and only while it listens", () => {
    const progress = new OpenProgress();
    const heardA: Report[] = [];
    const heardB: Report[] = [];
    const heardOther: Report[] = [];
    const stopA = progress.listen('acme', (...r) => heardA.push(r));
    const stopB = progress.listen('acme', (...r) => heardB.push(r));
    const stopOther = progress.listen('globex', (...r) => heardOther.push(r));
    const report = progress.reporter('acme');
    report('replay', 10_000, 40_000);
    stopA();
    report('replay', 20_000, 40_000);
    expect(heardA).toEqual([['replay', 10_000, 40_000]]);
    expect(heardB).toEqual([['replay', 10_000, 40_000], ['replay', 20_000, 40_000]]);
    expect(heardOther).toEqual([]);
    stopB();
    stopOther();
    stopA(); // twice: harmless
    expect(progress.tenantsListened).toBe(0);
    report('replay', 40_000, 40_000); // nobody listens: nothing to do
  });

  test('a listener that throws fails neither the open that reports nor the other listeners', () => {
    const progress = new OpenProgress();
    const heard: Report[] = [];
    progress.listen('acme', () => {
      throw new Error('client gone');
    });
    progress.listen('acme', (...r) => heard.push(r));
    expect(() => progress.reporter('acme')('scan', 1, 3)).not.toThrow();
    expect(heard).toEqual([['scan', 1, 3]]);
  });

  test(`past openProgressListenersMax (${openProgressListenersMax}) listeners on a tenant, a request goes without progress`, () => {
    const progress = new OpenProgress();
    let heard = 0;
    const stops = Array.from({ length: openProgressListenersMax }, () => progress.listen('acme', () => heard++));
    let extraHeard = 0;
    const stopExtra = progress.listen('acme', () => extraHeard++);
    progress.reporter('acme')('scan', 1, 1);
    expect(heard).toBe(openProgressListenersMax);
    expect(extraHeard).toBe(0);
    stopExtra();
    for (const stop of stops) stop();
    expect(progress.tenantsListened).toBe(0);
  });
});

describe('progressNotifier', () => {
  test(`at most one notification per ${progressNotifyMsMin} ms, but every phase's end; progress grows with each one; the token is the request's`, () => {
    const sent: Notification[] = [];
    let nowMs = 0;
    const notify = progressNotifier('tok-1', async (n) => void sent.push(n), () => nowMs);
    notify('scan', 1, 4); // sent: the first
    nowMs = 10;
    notify('scan', 2, 4); // too soon
    notify('scan', 4, 4); // the phase's end: sent
    nowMs = 20;
    notify('replay', 10_000, 30_000); // too soon after the last
    nowMs = 20 + progressNotifyMsMin;
    notify('replay', 20_000, 30_000); // sent
    notify('replay', 30_000, 30_000); // the end: sent
    expect(sent.map((n) => n.params)).toEqual([
      { progressToken: 'tok-1', progress: 1, message: "opening the tenant's store: checking the log segments, 1 of 4" },
      { progressToken: 'tok-1', progress: 2, message: "opening the tenant's store: checking the log segments, 4 of 4" },
      { progressToken: 'tok-1', progress: 3, message: "opening the tenant's store: replaying the log, 20000 of 30000" },
      { progressToken: 'tok-1', progress: 4, message: "opening the tenant's store: replaying the log, 30000 of 30000" },
    ]);
    expect(sent.every((n) => n.method === 'notifications/progress')).toBe(true);
  });

  test('a notification the transport refuses (client gone) is dropped without an unhandled rejection', async () => {
    const notify = progressNotifier(7, () => Promise.reject(new Error('connection closed')));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      notify('snapshot', 5, 5);
      await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });
});

describe('withOpenProgress', () => {
  test('a request with a token hears its tenant while its work runs, and stops when the work settles, answered or failed; one without hears nothing', async () => {
    const progress = new OpenProgress();
    const report = progress.reporter('acme');
    const sent: Notification[] = [];
    const notify = async (n: Notification) => void sent.push(n);
    const answer = await withOpenProgress(progress, 'acme', { token: 'tok', notify }, async () => {
      report('replay', 5, 5);
      return 'answered';
    });
    expect(answer).toBe('answered');
    await expect(withOpenProgress(progress, 'acme', { token: 'tok-2', notify }, async () => {
      report('scan', 1, 1);
      throw new Error('refused');
    })).rejects.toThrow('refused');
    await withOpenProgress(progress, 'acme', { token: undefined, notify }, async () => report('scan', 2, 2));
    expect(sent.map((n) => (n.params as { progressToken: unknown }).progressToken)).toEqual(['tok', 'tok-2']);
    expect(progress.tenantsListened).toBe(0);
    report('replay', 9, 9); // after the answers: nobody hears it
    expect(sent).toHaveLength(2);
  });

  test('a request its client cancels hears nothing more, though its work goes on', async () => {
    const progress = new OpenProgress();
    const report = progress.reporter('acme');
    const sent: Notification[] = [];
    const cancel = new AbortController();
    await withOpenProgress(progress, 'acme', { token: 'tok', notify: async (n) => void sent.push(n), signal: cancel.signal }, async () => {
      report('scan', 1, 1);
      cancel.abort();
      report('replay', 10, 10);
    });
    expect(sent.map((n) => (n.params as { message: string }).message)).toEqual(["opening the tenant's store: checking the log segments, 1 of 1"]);
    expect(progress.tenantsListened).toBe(0);
    // Cancelled before it began: it never listens.
    await withOpenProgress(progress, 'acme', { token: 'tok-2', notify: async (n) => void sent.push(n), signal: cancel.signal }, async () => report('scan', 1, 1));
    expect(sent).toHaveLength(1);
  });
});
