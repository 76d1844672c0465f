/** run_history_summary with the control plane's database away: a retryable `unavailable`, not an internal error. */
import { describe, expect, test } from 'vitest';
import { runHistorySummary } from '../../tools/run-history.js';
import type { TenantMemory } from '../../tools/memory.js';
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
