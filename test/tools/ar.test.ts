import { afterEach, beforeEach, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { anchorLabelCharsMax, anchorsMax, arHistoryPerSurfaceMax, arObservedAheadMsMax, arPayloadBytesMax } from '../../tools/ar.js';
import { memoryCatalog } from '../../tools/index.js';
import { jsonBytes } from '../../tools/json-bytes.js';
import { bob, expectRefused, openFixture, reopenChecked, type Fixture } from './memory-fixture.js';

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
  // An orientation that is no rotation (zero, scaled), for the surface or an anchor; each anchor id once.
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: [0, 0, 0, 0, 0, 0, 0] }), 'invalid_argument', /pose: the orientation \[qx,qy,qz,qw\] has norm 0; a unit quaternion is required/);
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: [0, 0, 0, 0, 0, 0, 2] }), 'invalid_argument', /has norm 2/);
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: pose(0), anchors: [{ id: 'a', pose: [1, 1, 1, 1, 1, 1, 1] }] }), 'invalid_argument', /anchors\.0\.pose: the orientation/);
  await expectRefused(f, f.call('ar_observe', { surface: 's', pose: pose(0), anchors: [{ id: 'a' }, { id: 'b' }, { id: 'a' }] }), 'invalid_argument', /anchors\.2\.id: anchor id a appears twice/);
  // Rounded by hand (norm 0.99) or in float32: accepted as given.
  expect(await f.call('ar_observe', { surface: 'rounded', pose: [0, 0, 0, 0, 0, 0.7, 0.7] })).toMatchObject({ seq: 1 });
  expect(await f.call('ar_surface_get', { surface: 'rounded' })).toMatchObject({ pose: [0, 0, 0, 0, 0, 0.7, 0.7] });
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

test('ar_surface_remove removes a surface with its history in one transaction: reads and its resource say not_found, subscribers hear of it', async () => {
  for (let i = 0; i < 3; i++) await f.call('ar_observe', { surface: 'desk', pose: pose(i) });
  await f.call('ar_observe', { surface: 'wall', pose: pose(9) });
  const announced: string[] = [];
  const tables: string[][] = [];
  const stop = f.memory.store.onCommit((txs) => {
    for (const tx of txs) {
      announced.push(...memoryCatalog.changedUris(tx));
      tables.push(tx.changes.map((c) => c.table));
    }
  });
  const removed = await f.call('ar_surface_remove', { surface: 'desk', idempotency_key: 'rm-desk' });
  stop();
  expect(removed).toEqual({ observations_removed: 3, offset: f.memory.store.lastOffset });
  expect(tables).toEqual([['ar_observations', 'ar_surfaces', 'sys_idempotency']]);
  expect(announced).toEqual(['memory://ar/desk']);
  await expectRefused(f, f.call('ar_surface_get', { surface: 'desk' }), 'not_found', /was never observed, or was removed/);
  await expectRefused(f, f.call('ar_history_list', { surface: 'desk' }), 'not_found');
  await expect(memoryCatalog.read(f.memory, 'memory://ar/desk')).rejects.toMatchObject({ code: 'not_found' });
  // A retry with the key answers the first result; without it, the surface is gone.
  expect(await f.call('ar_surface_remove', { surface: 'desk', idempotency_key: 'rm-desk' })).toEqual(removed);
  await expectRefused(f, f.call('ar_surface_remove', { surface: 'desk' }), 'not_found');
  await expectRefused(f, f.call('ar_surface_remove', { surface: 'desk' }, bob), 'not_found');
  expect(await f.call('ar_surface_get', { surface: 'wall' })).toMatchObject({ pose: pose(9), observations: 1 });
  await reopenChecked(f, false);
  await expectRefused(f, f.call('ar_surface_get', { surface: 'desk' }), 'not_found');
  // Observed again, it starts afresh: seq 1, a history of one.
  expect(await f.call('ar_observe', { surface: 'desk', pose: pose(5) })).toMatchObject({ seq: 1, latest: true });
  expect((await f.call('ar_history_list', { surface: 'desk' })).observations).toHaveLength(1);
});

test('an ar_history_list cursor held while its surface is removed and observed again is refused, naming the cursor and why; it does not go on into the new history', async () => {
  for (let i = 0; i < 5; i++) await f.call('ar_observe', { surface: 'desk', pose: pose(i) });
  const first = await f.call('ar_history_list', { surface: 'desk', limit: 2 });
  expect(first.observations.map((o: { seq: number }) => o.seq)).toEqual([5, 4]);
  // Observed more, it is the same surface: the cursor goes on below where it was.
  await f.call('ar_observe', { surface: 'desk', pose: pose(9) });
  expect((await f.call('ar_history_list', { surface: 'desk', limit: 2, cursor: first.next_cursor })).observations.map((o: { seq: number }) => o.seq)).toEqual([3, 2]);
  await f.call('ar_surface_remove', { surface: 'desk' });
  for (let i = 0; i < 5; i++) await f.call('ar_observe', { surface: 'desk', pose: pose(10 + i) });
  const refused = await expectRefused(f, f.call('ar_history_list', { surface: 'desk', limit: 2, cursor: first.next_cursor }), 'invalid_argument',
    /cursor was issued for the history of surface desk before it was removed; the surface there now was observed anew \(at offset \d+\) and its history is another/);
  expect(refused.hint).toMatch(/start again without a cursor/);
  // The new surface's own cursors page its history, after a reopen as well (the offset it was made at is stored).
  await reopenChecked(f, true);
  const fresh = await f.call('ar_history_list', { surface: 'desk', limit: 3 });
  const rest = await f.call('ar_history_list', { surface: 'desk', limit: 3, cursor: fresh.next_cursor });
  expect([...fresh.observations, ...rest.observations].map((o: { seq: number; pose: number[] }) => [o.seq, o.pose[0]])).toEqual([[5, 14], [4, 13], [3, 12], [2, 11], [1, 10]]);
  await expectRefused(f, f.call('ar_history_list', { surface: 'desk', cursor: first.next_cursor }), 'invalid_argument', /before it was removed/);
});

test('a surface whose whole history is at its limits (anchors, labels, payload) is removed in one transaction', async () => {
  // Each observation as heavy as ar_observe takes: 3-byte characters in every label, a payload of 4-byte JSON numbers (9 in msgpack).
  const anchors = Array.from({ length: anchorsMax }, (_, i) => ({ id: `a${i}`.padEnd(128, 'x'), pose: pose(0.1 + i), label: '日'.repeat(anchorLabelCharsMax) }));
  const floats = Array.from({ length: Math.floor((arPayloadBytesMax - 16) / 4) }, () => 0.1);
  const payload = { f: floats };
  expect(jsonBytes(payload)).toBeLessThanOrEqual(arPayloadBytesMax);
  for (let i = 0; i < arHistoryPerSurfaceMax + 1; i++) await f.call('ar_observe', { surface: 'heavy', pose: pose(i + 0.1), anchors, payload });
  const removed = await f.call('ar_surface_remove', { surface: 'heavy' }).catch((e: MemoryError) => e);
  expect(removed).toMatchObject({ observations_removed: arHistoryPerSurfaceMax });
  await expectRefused(f, f.call('ar_surface_get', { surface: 'heavy' }), 'not_found');
});

test('ar_surfaces_list pages every surface by id with its latest time; observed_before_ms keeps those not observed since, to pick what to remove', async () => {
  for (const [surface, at] of [['wall', 300], ['desk', 100], ['floor', 200], ['door', 50]] as const) await f.call('ar_observe', { surface, pose: pose(0), observed_at_ms: at });
  await f.call('ar_observe', { surface: 'desk', pose: pose(1), observed_at_ms: 400 });
  const walk = async (args: Record<string, unknown>) => {
    const seen: unknown[] = [];
    let cursor: string | undefined;
    do {
      const page = await f.call('ar_surfaces_list', { ...args, limit: 2, ...(cursor ? { cursor } : {}) });
      expect(page.surfaces.length).toBeLessThanOrEqual(2);
      seen.push(...page.surfaces);
      cursor = page.next_cursor;
    } while (cursor);
    return seen;
  };
  expect(await walk({})).toEqual([
    { surface: 'desk', observed_at_ms: 400, observations: 2 }, { surface: 'door', observed_at_ms: 50, observations: 1 },
    { surface: 'floor', observed_at_ms: 200, observations: 1 }, { surface: 'wall', observed_at_ms: 300, observations: 1 },
  ]);
  expect(await walk({ observed_before_ms: 250 })).toEqual([{ surface: 'door', observed_at_ms: 50, observations: 1 }, { surface: 'floor', observed_at_ms: 200, observations: 1 }]);
  // A cursor serves the query it paged.
  const first = await f.call('ar_surfaces_list', { observed_before_ms: 250, limit: 1 });
  await expectRefused(f, f.call('ar_surfaces_list', { cursor: first.next_cursor }), 'invalid_argument', /was not issued for this query/);
  await f.call('ar_surface_remove', { surface: 'door' });
  expect(await walk({ observed_before_ms: 250 })).toEqual([{ surface: 'floor', observed_at_ms: 200, observations: 1 }]);
});
