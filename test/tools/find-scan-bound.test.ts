/**
 * object_find over a type with more objects than one page may examine (findScanRowsMax): an
 * unordered find pages on (a page may end early, even empty, with a cursor) so every match is
 * reachable; an ordered one, which must sort the whole type, is refused saying why and what to do.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { findScanRowsMax } from '../../tools/query.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
const count = findScanRowsMax + 10;
const idOf = (i: number) => `o${String(i).padStart(6, '0')}`;

beforeAll(async () => {
  f = await openFixture();
  const chunk = 2000;
  for (let i = 0; i < count; i += chunk) {
    await Promise.all(Array.from({ length: Math.min(chunk, count - i) }, (_, j) => f.call('object_put', { id: idOf(i + j), type: 'big', attributes: { n: i + j } })));
  }
}, 120_000);
afterAll(() => f.close());

async function walk(query: Record<string, unknown>): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let pages = 0;
  let cursor: string | undefined;
  do {
    const page = await f.call('object_find', { ...query, ...(cursor ? { cursor } : {}) });
    ids.push(...page.objects.map((o: { id: string }) => o.id));
    cursor = page.next_cursor;
    pages++;
    expect(pages, 'pages').toBeLessThan(10);
  } while (cursor);
  return { ids, pages };
}

test(`an unordered find over more than findScanRowsMax (${findScanRowsMax}) objects reaches every match, a page at a time`, async () => {
  const last = await walk({ type: 'big', where: [{ path: 'n', op: 'gte', value: count - 5 }] });
  expect(last.ids).toEqual(Array.from({ length: 5 }, (_, i) => idOf(count - 5 + i)));
  expect(last.pages).toBe(2);
  const first = await walk({ type: 'big', where: [{ path: 'n', op: 'lt', value: 3 }] });
  expect(first.ids).toEqual([idOf(0), idOf(1), idOf(2)]);
  const both = await walk({ type: 'big', where: [{ path: 'n', op: 'in', value: [1, count - 1] }], limit: 1 });
  expect(both.ids).toEqual([idOf(1), idOf(count - 1)]);
});

test('an ordered find over more than findScanRowsMax objects is refused, naming the bound and what to do', async () => {
  const refused = await expectRefused(f, f.call('object_find', { type: 'big', where: [{ path: 'n', op: 'gte', value: count - 5 }], order_by: { path: 'n' } }),
    'limit_exceeded', new RegExp(`order_by sorts every object of type big, which has more than ${findScanRowsMax} \\(findScanRowsMax\\)`));
  expect(refused.hint).toMatch(/leave out order_by/);
});
