/** run_history_summary: with the control plane's database away, a retryable `unavailable`, not an internal error; a window of many groups, paged. */
import { describe, expect, test } from 'vitest';
import { memoryTools } from '../../tools/index.js';
import { runHistoryGroupsMax, runHistoryGroupsPerPageMax, runHistorySummary } from '../../tools/run-history.js';
import type { RunHistoryAggregate, TenantMemory } from '../../tools/memory.js';
import { MemoryError } from '../../storage/errors.js';

function memoryWhoseRunHistoryFails(error: Error): TenantMemory {
  return { runHistory: { aggregates: async () => { throw error; } } } as unknown as TenantMemory;
}

describe('runHistorySummary', () => {
  test.each([
    ['refused connection', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })],
    ['connection cut', new Error('Connection terminated unexpectedly')],
    ['silent server', new Error('Query read timeout')],
  ])('Postgres away (%s) is a retryable unavailable', async (_name, error) => {
    const refused = await runHistorySummary(memoryWhoseRunHistoryFails(error), '2026-01-01', '2026-01-07').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MemoryError);
    expect(refused).toMatchObject({ code: 'unavailable', hint: 'retry shortly' });
  });

  test('anything else is not dressed up as an outage', async () => {
    await expect(runHistorySummary(memoryWhoseRunHistoryFails(new TypeError('a bug')), '2026-01-01', '2026-01-07')).rejects.toThrow(TypeError);
  });
});

describe('run_history_summary', () => {
  const tool = memoryTools.find((t) => t.name === 'run_history_summary')!;
  const caller = { tenant: 'acme', subject: 'alice' };
  /** `agents` sessions' groups on one day, in an order of their own (a database collation need not order text as code units). */
  function groupsOfOneDay(agents: number): RunHistoryAggregate[] {
    return Array.from({ length: agents }, (_, i) => ({
      day: '2026-12-03', kind: 'session' as const, definition: i % 2 === 0 ? `Agent-${i}` : `agent-${i}`, outcome: 'completed',
      count: 1, durationMsAvg: 10, durationMsP50: 10, durationMsMax: 10,
    }));
  }
  const memoryOf = (rows: RunHistoryAggregate[]) => ({ runHistory: { aggregates: async () => rows } }) as unknown as TenantMemory;

  test('a day with more groups than a page holds is read whole, page by page, each group once', async () => {
    const rows = groupsOfOneDay(runHistoryGroupsPerPageMax * 2 + 100);
    const memory = memoryOf(rows);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = (await tool.call({ memory, caller }, { days: 1, ...(cursor ? { cursor } : {}) })) as { groups: { run: string }[]; next_cursor?: string };
      expect(page.groups.length).toBeLessThanOrEqual(runHistoryGroupsPerPageMax);
      seen.push(...page.groups.map((g) => g.run));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(rows.length);
    expect(new Set(seen).size).toBe(rows.length);
  });

  test('a cursor is bound to its days and refused for others', async () => {
    const memory = memoryOf(groupsOfOneDay(runHistoryGroupsPerPageMax + 1));
    const { next_cursor: cursor } = (await tool.call({ memory, caller }, { days: 1 })) as { next_cursor?: string };
    expect(cursor).toBeDefined();
    await expect(tool.call({ memory, caller }, { days: 2, cursor })).rejects.toMatchObject({ code: 'invalid_argument' });
  });

  test('a window the control plane answers runHistoryGroupsMax groups for is refused, naming the limit', async () => {
    await expect(tool.call({ memory: memoryOf(groupsOfOneDay(runHistoryGroupsMax)), caller }, { days: 1 }))
      .rejects.toMatchObject({ code: 'limit_exceeded', message: expect.stringContaining('runHistoryGroupsMax') });
  });
});
