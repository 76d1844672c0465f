/** The per-tenant load guard's rules, with an injected clock: bucket refill, FIFO slots, bounds, configuration checks. */
import { expect, test } from 'vitest';
import { BusyError, retryAfterSeconds, TenantLoadGuard } from '../../server/ops/load-protection.js';

test('the token bucket refuses past its burst, says when the next token comes, and refills with time', async () => {
  let now = 0;
  const guard = new TenantLoadGuard({ ratePerSecond: 10, burst: 3, inFlightMax: 100, queuedMax: 100 }, { nowMs: () => now });
  for (let i = 0; i < 3; i++) (await guard.acquire('t'))();
  const refused = await guard.acquire('t').catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(BusyError);
  expect(refused).toMatchObject({ code: 'busy', limit: 'rate', retryAfterMs: 100 });
  expect(retryAfterSeconds((refused as BusyError).retryAfterMs)).toBe(1);
  now += 100;
  (await guard.acquire('t'))();
  expect((await guard.acquire('other'))).toBeTypeOf('function'); // tenants have their own buckets
});

test('past inFlightMax calls wait in order; past queuedMax they are refused; a slot passes straight to the next waiter', async () => {
  const guard = new TenantLoadGuard({ ratePerSecond: 1000, burst: 1000, inFlightMax: 2, queuedMax: 2 });
  const first = await guard.acquire('t');
  const second = await guard.acquire('t');
  const order: number[] = [];
  const third = guard.acquire('t').then((release) => (order.push(3), release));
  const fourth = guard.acquire('t').then((release) => (order.push(4), release));
  await expect(guard.acquire('t')).rejects.toMatchObject({ code: 'busy', limit: 'queue' });
  expect(guard.stats('t')).toMatchObject({ inFlight: 2, queued: 2 });
  first();
  (await third)();
  second();
  (await fourth)();
  expect(order).toEqual([3, 4]);
  expect(guard.stats('t')).toMatchObject({ inFlight: 0, queued: 0 });
  expect(() => first()).toThrow(/released twice/);
});

test('limits outside their bounds are refused at construction, naming the limit', () => {
  expect(() => new TenantLoadGuard({ inFlightMax: 0 })).toThrow(/inFlightMax/);
  expect(() => new TenantLoadGuard({ queuedMax: 1.5 })).toThrow(/queuedMax/);
  expect(() => new TenantLoadGuard({ ratePerSecond: Number.POSITIVE_INFINITY })).toThrow(/ratePerSecond/);
});
