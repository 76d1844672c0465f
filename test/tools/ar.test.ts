import { afterEach, beforeEach, expect, test } from 'vitest';
import { arHistoryPerSurfaceMax, arObservedAheadMsMax } from '../../tools/ar.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

const pose = (x: number) => [x, 0, 0, 0, 0, 0, 1];

test('the latest observation by observed_at is the surface state; an older one only joins the history', async () => {
  const first = await f.call('ar_observe', { surface: 'table-1', pose: pose(1), anchors: [{ id: 'cup', pose: pose(1.5), label: 'cup' }], payload: { lux: 300 }, observed_at_ms: 1000 });
  expect(first).toMatchObject({ seq: 1, latest: true });
  const late = await f.call('ar_observe', { surface: 'table-1', pose: pose(0), observed_at_ms: 500 });
  expect(late).toMatchObject({ seq: 2, latest: false });
  expect(await f.call('ar_surface_get', { surface: 'table-1' })).toEqual({
    surface: 'table-1', pose: pose(1), anchors: [{ id: 'cup', pose: pose(1.5), label: 'cup' }], payload: { lux: 300 }, observed_at_ms: 1000, observations: 2,
  });
  await f.call('ar_observe', { surface: 'table-1', pose: pose(2), observed_at_ms: 2000 });
  expect(await f.call('ar_surface_get', { surface: 'table-1' })).toMatchObject({ pose: pose(2), anchors: [], observed_at_ms: 2000 });
  const history = await f.call('ar_history_list', { surface: 'table-1' });
  expect(history.observations.map((o: { seq: number; observed_at_ms: number }) => [o.seq, o.observed_at_ms])).toEqual([[3, 2000], [2, 500], [1, 1000]]);
});

test(`history keeps the newest ${arHistoryPerSurfaceMax} observations, evicting the oldest in the same transaction`, async () => {
  const total = arHistoryPerSurfaceMax + 7;
  await Promise.all(Array.from({ length: total }, (_, i) => f.call('ar_observe', { surface: 's', pose: pose(i), observed_at_ms: i })));
  const seqs: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await f.call('ar_history_list', { surface: 's', limit: 40, ...(cursor ? { cursor } : {}) });
    seqs.push(...page.observations.map((o: { seq: number }) => o.seq));
    cursor = page.next_cursor;
  } while (cursor);
  expect(seqs).toEqual(Array.from({ length: arHistoryPerSurfaceMax }, (_, i) => total - i));
  expect(await f.call('ar_surface_get', { surface: 's' })).toMatchObject({ observations: total, observed_at_ms: total - 1 });
});

test('malformed poses, too many anchors and unknown surfaces are refused', async () => {
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: [1, 2, 3] }), 'invalid_argument');
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: [1, 2, 3, 4, 5, 6, 'x'] }), 'invalid_argument');
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: pose(0), anchors: Array.from({ length: 65 }, (_, i) => ({ id: `a${i}` })) }), 'invalid_argument');
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: pose(0), payload: { blob: 'x'.repeat(20_000) } }), 'limit_exceeded');
  await expectRefused(f, f.call('ar_observe', { surface: 'bad surface', pose: pose(0) }), 'invalid_argument');
  await expectRefused(f, f.call('ar_surface_get', { surface: 'nowhere' }), 'not_found');
  // Its history too: a misspelt surface is not an empty history.
  await expectRefused(f, f.call('ar_history_list', { surface: 'nowhere' }), 'not_found', /never observed/);
});

test(`an observed_at_ms more than arObservedAheadMsMax (${arObservedAheadMsMax} ms) past the server's clock is refused, so it cannot pin a surface's state`, async () => {
  const nowMs = Date.now();
  await f.call('ar_observe', { surface: 's', pose: pose(0), observed_at_ms: nowMs + 60_000 }); // a device clock a minute fast
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: pose(9), observed_at_ms: nowMs + 365 * 86_400_000 }), 'invalid_argument', /past the server's clock/);
  await f.call('ar_observe', { surface: 's', pose: pose(1) }); // now, later than neither: joins the history
  await f.call('ar_observe', { surface: 's', pose: pose(2), observed_at_ms: nowMs + 120_000 });
  expect(await f.call('ar_surface_get', { surface: 's' })).toMatchObject({ pose: pose(2), observations: 3 });
});
