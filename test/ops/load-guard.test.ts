/** The per-tenant load guard's rules, with an injected clock: bucket refill, FIFO slots, bounds, configuration checks. */
import { expect, test } from 'vitest';
import { BusyError, soloQuietMs, TenantLoadGuard } from '../../server/ops/load-protection.js';

test('the token bucket refuses past its burst, says when the next token comes, and refills with time', async () => {
  let now = 0;
  const guard = new TenantLoadGuard({ ratePerSecond: 10, burst: 3, inFlightMax: 100, queuedMax: 100 }, { nowMs: () => now });
  for (let i = 0; i < 3; i++) (await guard.acquire('t'))();
  const refused = await guard.acquire('t').catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(BusyError);
  expect(refused).toMatchObject({ code: 'busy', limit: 'rate', retryAfterMs: 100 });
  now += 100;
  (await guard.acquire('t'))();
  expect((await guard.acquire('other'))).toBeTypeOf('function'); // tenants have their own buckets
});

test('past inFlightMax calls wait in order; past queuedMax they are refused; a slot passes straight to the next waiter', async () => {
  // One tenant, alone: its bound is aloneInFlightMax, set here to inFlightMax (see the lone-tenant test).
  const guard = new TenantLoadGuard({ ratePerSecond: 1000, burst: 1000, inFlightMax: 2, aloneInFlightMax: 2, queuedMax: 2 });
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
  expect(() => new TenantLoadGuard({ inFlightMax: 8, aloneInFlightMax: 4 })).toThrow(/aloneInFlightMax = 4 is below inFlightMax = 8/);
  // Unless given, a tenant alone may run twice its inFlightMax.
  expect(new TenantLoadGuard({ inFlightMax: 8 }).limits.aloneInFlightMax).toBe(16);
  expect(new TenantLoadGuard().limits).toMatchObject({ inFlightMax: 16, aloneInFlightMax: 32 });
});

test('freed slots go round robin to the tenants waiting: a quiet tenant is next, not behind the flood', async () => {
  const guard = new TenantLoadGuard({ ratePerSecond: 1000, burst: 1000, inFlightMax: 4, queuedMax: 100 }, { runningMax: 2 });
  const running = [await guard.acquire('flood'), await guard.acquire('flood')];
  const quietFirst = await guard.acquire('quiet'); // nothing of its own running: in at once
  const order: string[] = [];
  const waiting = [
    ...Array.from({ length: 6 }, () => guard.acquire('flood').then((release) => (order.push('flood'), release))),
    guard.acquire('quiet').then((release) => (order.push('quiet'), release)),
  ];
  expect(guard.totals()).toEqual({ running: 3, waiting: 7 });
  running[0]!();
  running[1]!();
  quietFirst();
  await Promise.resolve();
  await Promise.resolve();
  // The two freed slots: the flood's first waiter, then the quiet tenant (its turn in the ring).
  expect(order).toEqual(['flood', 'quiet']);
  for (const pending of waiting) (await pending)(); // in FIFO order per tenant, one slot at a time
  expect(order.filter((t) => t === 'flood')).toHaveLength(6);
  expect(guard.totals()).toEqual({ running: 0, waiting: 0 });
});

test('a tenant at its own inFlightMax is passed over for others; the server-wide bound holds for all', async () => {
  const guard = new TenantLoadGuard({ ratePerSecond: 1000, burst: 1000, inFlightMax: 2, aloneInFlightMax: 2, queuedMax: 10 }, { runningMax: 3 });
  const a1 = await guard.acquire('a');
  const a2 = await guard.acquire('a');
  const a3 = guard.acquire('a'); // a is at its inFlightMax: waits though a server slot is free
  const b1 = await guard.acquire('b'); // b waits behind nobody of its own: takes the free slot
  expect(guard.stats('a')).toMatchObject({ inFlight: 2, queued: 1 });
  expect(guard.totals()).toEqual({ running: 3, waiting: 1 });
  const b2 = guard.acquire('b');
  b1(); // a server slot frees, but a is still at its own bound: b's waiter gets it
  (await b2)();
  expect(guard.stats('a')).toMatchObject({ inFlight: 2, queued: 1 });
  a1();
  (await a3)();
  a2();
  expect(guard.totals()).toEqual({ running: 0, waiting: 0 });
  expect(() => new TenantLoadGuard({}, { runningMax: 0 })).toThrow(/runningMax/);
});

test("a tenant with nothing running is admitted at once past the shared bound, up to the hard one", async () => {
  const guard = new TenantLoadGuard({ ratePerSecond: 1000, burst: 1000, inFlightMax: 4, queuedMax: 10 }, { runningMax: 1, nowMs: () => 0 });
  (await guard.acquire('b'))(); // b called just now: flood is not alone, the shared bound holds for it
  const releases = [await guard.acquire('flood')];
  const floodWaits = guard.acquire('flood'); // the shared slot is taken: waits
  for (const tenant of ['b', 'c', 'd']) releases.push(await guard.acquire(tenant)); // first calls: in at once (hard bound 4)
  expect(guard.totals()).toEqual({ running: 4, waiting: 1 });
  const eWaits = guard.acquire('e'); // past the hard bound: in line like any other call
  expect(guard.totals()).toEqual({ running: 4, waiting: 2 });
  for (const release of releases) release();
  (await floodWaits)();
  (await eWaits)();
  expect(guard.totals()).toEqual({ running: 0, waiting: 0 });
});

test('a tenant alone runs past the shared bound and its own, up to its alone bound; a newcomer gets in at once and both bounds return', async () => {
  let now = 0;
  const guard = new TenantLoadGuard({ ratePerSecond: 1000, burst: 1000, inFlightMax: 3, aloneInFlightMax: 6, queuedMax: 20 }, { runningMax: 1, nowMs: () => now });
  // Nobody else has called: the lone tenant is held neither to 1 running call nor to its 3, only to its alone bound 6.
  const loneAcquired = Array.from({ length: 6 }, () => guard.acquire('lone'));
  expect(guard.totals()).toEqual({ running: 6, waiting: 0 }); // granted at once (checked before awaiting)
  const lone = await Promise.all(loneAcquired);
  const loneWaits = guard.acquire('lone'); // its alone bound: waits
  expect(guard.totals()).toEqual({ running: 6, waiting: 1 });
  lone.pop()!(); // a slot of its own frees: still alone, the waiter goes in at once
  lone.push(await loneWaits);
  expect(guard.totals()).toEqual({ running: 6, waiting: 0 });

  // A newcomer's first call is admitted at once, though 6 run against a shared bound of 1 (x4).
  now = 10;
  const quietAcquired = guard.acquire('quiet');
  expect(guard.totals()).toEqual({ running: 7, waiting: 0 });
  const quiet = await quietAcquired;
  // Now the lone tenant is not alone: its next call waits for the shared bound, and as its running
  // calls finish they are not replaced until fewer than runningMax run.
  const order: string[] = [];
  const loneNext = guard.acquire('lone').then((release) => (order.push('lone'), release));
  const quietNext = guard.acquire('quiet').then((release) => (order.push('quiet'), release));
  for (const release of lone) release();
  await Promise.resolve();
  expect(order).toEqual([]);
  expect(guard.totals()).toEqual({ running: 1, waiting: 2 });
  quiet(); // the one slot: round robin between the two tenants, lone first (it waited first)
  (await loneNext)();
  (await quietNext)();
  expect(order).toEqual(['lone', 'quiet']);

  // The newcomer stays present for soloQuietMs after its last call; after that the lone tenant is alone again.
  now = 10 + soloQuietMs - 1;
  const held = await guard.acquire('lone');
  const heldBack = guard.acquire('lone');
  expect(guard.totals()).toEqual({ running: 1, waiting: 1 });
  now = 10 + soloQuietMs;
  held(); // the waiter takes the freed shared slot
  const again = await heldBack;
  // Quiet for soloQuietMs: alone again, past both bounds up to its alone bound.
  const moreAcquired = Array.from({ length: 5 }, () => guard.acquire('lone'));
  expect(guard.totals()).toEqual({ running: 6, waiting: 0 });
  const more = await Promise.all(moreAcquired);
  again();
  for (const release of more) release();
  expect(guard.totals()).toEqual({ running: 0, waiting: 0 });
});
