/**
 * object_find ordered by an array- or object-valued attribute serialises each value once per
 * find, not on every comparison of the sort (about 2 log2(n) times each): ordering n objects
 * by such an attribute cost ~2 log2(n) times reading them, on every page.
 */
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await f.close();
});

const objects = 300;

test('a sort by an object-valued attribute serialises each value about once', async () => {
  for (let i = 0; i < objects; i++) await f.call('object_put', { id: `o${String(i).padStart(3, '0')}`, type: 't', attributes: { x: { k: (i * 7919) % objects, l: [i] } } });
  const stringify = vi.spyOn(JSON, 'stringify');
  const first = await f.call('object_find', { type: 't', order_by: { path: 'x' }, limit: 10 });
  const serialisedFirst = stringify.mock.calls.length;
  stringify.mockClear();
  const second = await f.call('object_find', { type: 't', order_by: { path: 'x' }, limit: 10, cursor: first.next_cursor });
  const serialisedSecond = stringify.mock.calls.length;
  // The order itself is unchanged: the canonical texts ({"k":..,"l":[..]}, keys sorted) ascending, from the smallest of all.
  const texts = [...first.objects, ...second.objects].map((o: { attributes: { x: unknown } }) => JSON.stringify(o.attributes.x));
  expect(texts).toEqual([...texts].sort());
  expect(texts[0]).toBe('{"k":0,"l":[0]}');
  // One text per object, plus the page's own few (cursor, result bounds): was ~2 log2(n) per object.
  expect(serialisedFirst).toBeLessThan(objects + 100);
  expect(serialisedSecond).toBeLessThan(objects + 100);
});
