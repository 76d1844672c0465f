import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { cursorCharsMax, cursorTtlMs, encodeCursor } from '../../tools/cursor.js';
import { jsonBytes } from '../../tools/json-bytes.js';
import { attributesBytesMax } from '../../tools/objects.js';
import { cursorSortValueBytesMax } from '../../tools/query.js';
import { resultBytesMax } from '../../tools/tool.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture({ segmentBytesMax: 4096 });
});
afterEach(async () => {
  vi.useRealTimers();
  await f.close();
});

async function seedPeople(): Promise<void> {
  const people = [
    { id: 'p01', name: 'Ann', age: 31, city: 'Oslo', tags: ['a'] },
    { id: 'p02', name: 'Bo', age: 25, city: 'Rome' },
    { id: 'p03', name: 'Cy', age: 47, city: 'Oslo', boss: true },
    { id: 'p04', name: 'Di', age: 25, city: 'Lima', address: { zip: '1000' } },
    { id: 'p05', name: 'Ed', city: 'Rome' },
    { id: 'p06', name: 'Fay', age: 62, city: 'Oslo', address: { zip: '2000' } },
  ];
  for (const { id, ...attributes } of people) await f.call('object_put', { id, type: 'person', attributes });
  await f.call('object_put', { id: 'x01', type: 'place', attributes: { name: 'Oslo', age: 1000 } });
}

async function findAll(args: Record<string, unknown>, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await f.call('object_find', { ...args, limit, ...(cursor ? { cursor } : {}) });
    expect(page.objects.length).toBeLessThanOrEqual(limit);
    ids.push(...page.objects.map((o: { id: string }) => o.id));
    cursor = page.next_cursor;
  } while (cursor);
  return ids;
}

describe('object_find', () => {
  test('each predicate operator selects exactly the matching objects of the type', async () => {
    await seedPeople();
    const ids = async (where: unknown[]) => (await f.call('object_find', { type: 'person', where })).objects.map((o: { id: string }) => o.id);
    expect(await ids([{ path: 'city', op: 'eq', value: 'Oslo' }])).toEqual(['p01', 'p03', 'p06']);
    expect(await ids([{ path: 'city', op: 'ne', value: 'Oslo' }])).toEqual(['p02', 'p04', 'p05']);
    expect(await ids([{ path: 'age', op: 'lt', value: 31 }])).toEqual(['p02', 'p04']);
    expect(await ids([{ path: 'age', op: 'lte', value: 31 }])).toEqual(['p01', 'p02', 'p04']);
    expect(await ids([{ path: 'age', op: 'gt', value: 47 }])).toEqual(['p06']);
    expect(await ids([{ path: 'age', op: 'gte', value: 47 }])).toEqual(['p03', 'p06']);
    expect(await ids([{ path: 'city', op: 'in', value: ['Lima', 'Rome'] }])).toEqual(['p02', 'p04', 'p05']);
    expect(await ids([{ path: 'age', op: 'exists', value: false }])).toEqual(['p05']);
    expect(await ids([{ path: 'boss', op: 'exists' }])).toEqual(['p03']);
    expect(await ids([{ path: 'address.zip', op: 'eq', value: '2000' }])).toEqual(['p06']);
    expect(await ids([{ path: 'tags', op: 'eq', value: ['a'] }])).toEqual(['p01']);
    expect(await ids([{ path: 'city', op: 'eq', value: 'Oslo' }, { path: 'age', op: 'lt', value: 50 }])).toEqual(['p01', 'p03']);
    // A string never compares with a number.
    expect(await ids([{ path: 'age', op: 'gt', value: '1' }])).toEqual([]);
  });

  test('ordered results page through every match exactly once, ascending and descending', async () => {
    await seedPeople();
    expect(await findAll({ type: 'person', order_by: { path: 'age' } }, 2)).toEqual(['p02', 'p04', 'p01', 'p03', 'p06', 'p05']);
    expect(await findAll({ type: 'person', order_by: { path: 'age', desc: true } }, 4)).toEqual(['p05', 'p06', 'p03', 'p01', 'p02', 'p04']);
    expect(await findAll({ type: 'person' }, 4)).toEqual(['p01', 'p02', 'p03', 'p04', 'p05', 'p06']);
    expect(await findAll({ type: 'person', where: [{ path: 'city', op: 'eq', value: 'Oslo' }], order_by: { path: 'name', desc: true } }, 1))
      .toEqual(['p06', 'p03', 'p01']);
  });

  test('a page continues correctly when objects change between pages', async () => {
    await seedPeople();
    const first = await f.call('object_find', { type: 'person', limit: 3 });
    expect(first.objects.map((o: { id: string }) => o.id)).toEqual(['p01', 'p02', 'p03']);
    await f.call('object_delete', { id: 'p04' });
    await f.call('object_put', { id: 'p00', type: 'person', attributes: { name: 'Zed' } });
    const rest = await f.call('object_find', { type: 'person', limit: 3, cursor: first.next_cursor });
    expect(rest.objects.map((o: { id: string }) => o.id)).toEqual(['p05', 'p06']);
    expect(rest.next_cursor).toBeUndefined();
  });

  test('ordered paging continues past sort values of any length; the cursor stays within cursorCharsMax', async () => {
    // Keys share a long prefix, so only their ends order them; the longest id and values at and past the carried bound.
    const id = (n: number) => `${n}`.padEnd(128, 'i');
    const atBound = '日'.repeat(Math.floor((cursorSortValueBytesMax - 2) / 3)) + 'x'.repeat((cursorSortValueBytesMax - 2) % 3);
    const values = ['a'.repeat(5000) + 'b', 'a'.repeat(5000) + 'c', atBound, atBound + 'x', '😀'.repeat(4000), 'z'];
    for (const [n, v] of values.entries()) await f.call('object_put', { id: id(n), type: 'doc', attributes: { k: v } });
    const order = values.map((v, n) => [v, id(n)] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, i]) => i);
    const cursors: string[] = [];
    let cursor: string | undefined;
    const seen: string[] = [];
    do {
      const page = await f.call('object_find', { type: 'doc', order_by: { path: 'k' }, limit: 1, ...(cursor ? { cursor } : {}) });
      seen.push(...page.objects.map((o: { id: string }) => o.id));
      cursor = page.next_cursor;
      if (cursor) cursors.push(cursor);
    } while (cursor);
    expect(seen).toEqual(order);
    for (const c of cursors) expect(c.length).toBeLessThanOrEqual(cursorCharsMax);
    expect(await findAll({ type: 'doc', order_by: { path: 'k', desc: true } }, 2)).toEqual([...order].reverse());
  });

  test('a position too long for a cursor is limit_exceeded, never an internal error', () => {
    const error = (() => { try { encodeCursor('scope', 'p'.repeat(cursorCharsMax)); } catch (e) { return e; } })();
    expect(error).toBeInstanceOf(MemoryError);
    expect((error as MemoryError).code).toBe('limit_exceeded');
    expect((error as MemoryError).message).toMatch(/cursorCharsMax/);
  });

  test('a cursor past a long sort value is invalid_argument once that object has changed, telling to start again', async () => {
    const long = 'q'.repeat(cursorSortValueBytesMax * 2);
    for (const id of ['a', 'b', 'c']) await f.call('object_put', { id, type: 'doc', attributes: { k: `${long}${id}` } });
    const first = await f.call('object_find', { type: 'doc', order_by: { path: 'k' }, limit: 1 });
    expect(first.objects.map((o: { id: string }) => o.id)).toEqual(['a']);
    await f.call('object_patch', { id: 'a', set: { k: `${long}d` } });
    const error = await expectRefused(f, f.call('object_find', { type: 'doc', order_by: { path: 'k' }, limit: 1, cursor: first.next_cursor }), 'invalid_argument', /object a/);
    expect(error.hint).toMatch(/start again/);
  });

  test('forged, edited, foreign and stale cursors are invalid_argument', async () => {
    await seedPeople();
    const page = await f.call('object_find', { type: 'person', limit: 2 });
    const cursor: string = page.next_cursor;
    const [body, mac] = cursor.split('.') as [string, string];
    const forgedBody = Buffer.from(JSON.stringify({ p: { id: 'p04' }, t: Date.now() })).toString('base64url');
    await expectRefused(f, f.call('object_find', { type: 'person', cursor: `${forgedBody}.${mac}` }), 'invalid_argument', /cursor/);
    await expectRefused(f, f.call('object_find', { type: 'person', cursor: `${body}.${mac.slice(0, -2)}AA` }), 'invalid_argument', /cursor/);
    await expectRefused(f, f.call('object_find', { type: 'person', cursor: 'not-a-cursor' }), 'invalid_argument', /cursor/);
    // A cursor is bound to its query: another type or other predicates may not reuse it.
    await expectRefused(f, f.call('object_find', { type: 'place', cursor }), 'invalid_argument', /cursor/);
    await expectRefused(f, f.call('object_find', { type: 'person', where: [{ path: 'age', op: 'exists' }], cursor }), 'invalid_argument');
    await expectRefused(f, f.call('object_find', { type: 'person', cursor: 'x'.repeat(3000) }), 'invalid_argument');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + cursorTtlMs + 1000);
    await expectRefused(f, f.call('object_find', { type: 'person', cursor }), 'invalid_argument', /stale/);
  });

  test('malformed predicates are invalid_argument', async () => {
    await expectRefused(f, f.call('object_find', { type: 'person', where: [{ path: 'age', op: 'lt', value: [1] }] }), 'invalid_argument');
    await expectRefused(f, f.call('object_find', { type: 'person', where: [{ path: 'age', op: 'like', value: 1 }] }), 'invalid_argument');
    await expectRefused(f, f.call('object_find', { type: 'person', where: [{ path: 'a..b', op: 'eq', value: 1 }] }), 'invalid_argument');
    await expectRefused(f, f.call('object_find', { type: 'person', where: [{ path: 'a', op: 'eq' }] }), 'invalid_argument');
    await expectRefused(f, f.call('object_find', { type: 'person', where: [{ path: 'a', op: 'in', value: 'x' }] }), 'invalid_argument');
    await expectRefused(f, f.call('object_find', { type: 'person', limit: 1000 }), 'invalid_argument');
  });

  test('pages are bounded by bytes as well as by count', async () => {
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 6; i++) await f.call('object_put', { id: `big${i}`, type: 'blob', attributes: { big } });
    const page = await f.call('object_find', { type: 'blob', limit: 200 });
    expect(page.objects.length).toBeLessThan(6);
    expect(Buffer.byteLength(JSON.stringify(page))).toBeLessThanOrEqual(256 * 1024);
    expect(await findAll({ type: 'blob' }, 200)).toEqual(['big0', 'big1', 'big2', 'big3', 'big4', 'big5']);
  });
});

describe('attributes at their byte bound', () => {
  test('attributes are bounded in UTF-8 bytes: the largest multi-byte object is readable by get, find, history and as-of', async () => {
    // {"body":"…"} is 11 bytes around the text; '日' is 3 bytes in UTF-8 (1 UTF-16 unit).
    const room = attributesBytesMax - 11;
    const largest = { body: '日'.repeat(Math.floor(room / 3)) + 'x'.repeat(room % 3) };
    expect(jsonBytes(largest)).toBe(attributesBytesMax);
    await expectRefused(f, f.call('object_put', { type: 'doc', attributes: { body: largest.body + 'x' } }), 'limit_exceeded', /attributesBytesMax/);
    await expectRefused(f, f.call('object_put', { type: 'doc', attributes: { body: '日'.repeat(100_000) } }), 'limit_exceeded', /attributesBytesMax/);
    await f.call('object_put', { id: 'a', type: 'doc', attributes: { body: 'small' } });
    const { offset } = await f.call('object_put', { id: 'big', type: 'doc', attributes: largest });
    await f.call('object_put', { id: 'z', type: 'doc', attributes: { body: 'small' } });
    expect((await f.call('object_get', { id: 'big' })).attributes).toEqual(largest);
    expect(await findAll({ type: 'doc' }, 1)).toEqual(['a', 'big', 'z']);
    expect(await findAll({ type: 'doc', order_by: { path: 'body' } }, 200)).toEqual(['a', 'z', 'big']);
    expect((await f.call('object_history', { id: 'big', include_attributes: true })).versions[0].attributes).toEqual(largest);
    await f.call('object_patch', { id: 'big', set: { body: 'now small' } });
    expect((await f.call('object_history', { id: 'big', include_attributes: true })).versions[1].attributes).toEqual(largest);
    expect((await f.call('object_get_as_of', { id: 'big', offset })).attributes).toEqual(largest);
  });
});

describe('object_neighbors', () => {
  beforeEach(async () => {
    for (const id of ['a', 'b', 'c', 'd', 'e']) await f.call('object_put', { id, type: id === 'e' ? 'other' : 'node', attributes: {} });
    await f.call('object_link', { src: 'a', kind: 'next', dst: 'b' });
    await f.call('object_link', { src: 'b', kind: 'next', dst: 'c' });
    await f.call('object_link', { src: 'c', kind: 'next', dst: 'd' });
    await f.call('object_link', { src: 'e', kind: 'likes', dst: 'a' });
  });

  test('depth bounds the walk; direction and kinds filter it', async () => {
    const one = await f.call('object_neighbors', { id: 'a' });
    expect(one).toEqual({ nodes: [{ id: 'b', type: 'node', depth: 1 }], edges: [{ src: 'a', kind: 'next', dst: 'b' }], truncated: false });
    const three = await f.call('object_neighbors', { id: 'a', depth: 3 });
    expect(three.nodes.map((n: { id: string; depth: number }) => `${n.id}@${n.depth}`)).toEqual(['b@1', 'c@2', 'd@3']);
    const incoming = await f.call('object_neighbors', { id: 'a', direction: 'in' });
    expect(incoming.nodes).toEqual([{ id: 'e', type: 'other', depth: 1 }]);
    const both = await f.call('object_neighbors', { id: 'b', direction: 'both', depth: 2 });
    expect(both.nodes.map((n: { id: string }) => n.id).sort()).toEqual(['a', 'c', 'd', 'e']);
    const likesOnly = await f.call('object_neighbors', { id: 'a', direction: 'both', kinds: ['likes'] });
    expect(likesOnly.nodes.map((n: { id: string }) => n.id)).toEqual(['e']);
  });

  test('the node limit truncates and says so; bad bounds are invalid_argument; an unknown root is not_found', async () => {
    const limited = await f.call('object_neighbors', { id: 'b', direction: 'both', depth: 4, limit: 2 });
    expect(limited.nodes).toHaveLength(2);
    expect(limited.truncated).toBe(true);
    await expectRefused(f, f.call('object_neighbors', { id: 'a', depth: 5 }), 'invalid_argument');
    await expectRefused(f, f.call('object_neighbors', { id: 'zz' }), 'not_found');
  });

  test('a full page of long ids and kinds stays within resultBytesMax: truncated, not limit_exceeded', async () => {
    const long = (prefix: string) => prefix.padEnd(128, 'x');
    const type = 'T'.padEnd(64, 't');
    const kinds = ['k0', 'k1', 'k2', 'k3'].map((k) => k.padEnd(64, 'k'));
    await f.call('object_put', { id: long('hub'), type, attributes: {} });
    for (let i = 0; i < 200; i++) {
      await f.call('object_put', { id: long(`n${i}`), type, attributes: {} });
      for (const kind of kinds) await f.call('object_link', { src: long('hub'), kind, dst: long(`n${i}`) });
    }
    // 200 nodes and 800 edges: about 325 KB of JSON.
    const page = await f.call('object_neighbors', { id: long('hub'), limit: 200 });
    expect(jsonBytes(page)).toBeLessThanOrEqual(resultBytesMax);
    expect(page.truncated).toBe(true);
    expect(page.nodes).toHaveLength(200);
    expect(page.edges.length).toBeGreaterThan(500);
  }, 60_000);
});

describe('object_history and object_get_as_of', () => {
  test('history lists each version with offset, op, reducer, caller and time; images come from the log', async () => {
    const v1 = await f.call('object_put', { id: 'h', type: 'doc', attributes: { text: 'one' } });
    const v2 = await f.call('object_patch', { id: 'h', set: { text: 'two' } }, { tenant: 'acme', subject: 'bob' });
    const v3 = await f.call('object_put', { id: 'h', type: 'doc2', attributes: { text: 'three' } });
    const history = await f.call('object_history', { id: 'h' });
    expect(history.trimmed).toBe(false);
    expect(history.versions.map((v: { version: number; offset: number; op: string; reducer: string; caller: string }) =>
      [v.version, v.offset, v.op, v.reducer, v.caller])).toEqual([
      [3, v3.offset, 'put', 'object_put', 'alice'],
      [2, v2.offset, 'patch', 'object_patch', 'bob'],
      [1, v1.offset, 'put', 'object_put', 'alice'],
    ]);
    expect(history.versions[0].at_ms).toEqual(expect.any(Number));
    const withImages = await f.call('object_history', { id: 'h', include_attributes: true });
    expect(withImages.versions.map((v: { attributes: unknown; type: string; image: string }) => [v.type, v.attributes, v.image])).toEqual([
      ['doc2', { text: 'three' }, 'current'],
      ['doc', { text: 'two' }, 'log'],
      ['doc', { text: 'one' }, 'log'],
    ]);
    const paged = await f.call('object_history', { id: 'h', limit: 2 });
    expect(paged.versions.map((v: { version: number }) => v.version)).toEqual([3, 2]);
    const rest = await f.call('object_history', { id: 'h', limit: 2, cursor: paged.next_cursor });
    expect(rest.versions.map((v: { version: number }) => v.version)).toEqual([1]);
    await expectRefused(f, f.call('object_history', { id: 'nothing' }), 'not_found');
  });

  test('as-of reads return the version current at each offset, across delete and re-create and a restart', async () => {
    const v1 = await f.call('object_put', { id: 'h', type: 'doc', attributes: { n: 1 } });
    const other = await f.call('object_put', { id: 'other', type: 'doc', attributes: {} });
    const v2 = await f.call('object_patch', { id: 'h', set: { n: 2 } });
    const gone = await f.call('object_delete', { id: 'h' });
    const v4 = await f.call('object_put', { id: 'h', type: 'doc', attributes: { n: 4 } });
    const asOf = (offset: number) => f.call('object_get_as_of', { id: 'h', offset });
    expect(await asOf(v1.offset)).toEqual({ id: 'h', type: 'doc', attributes: { n: 1 }, version: 1, offset: v1.offset, at_ms: expect.any(Number) });
    expect(await asOf(other.offset)).toMatchObject({ attributes: { n: 1 }, version: 1 });
    expect(await asOf(v2.offset)).toMatchObject({ attributes: { n: 2 }, version: 2 });
    await expectRefused(f, asOf(gone.offset), 'not_found', /deleted at offset/);
    expect(await asOf(v4.offset)).toMatchObject({ attributes: { n: 4 }, version: 4 });
    if (v1.offset > 0) await expectRefused(f, asOf(v1.offset - 1), 'not_found', /did not exist/);
    await expectRefused(f, asOf(v4.offset + 100), 'invalid_argument', /beyond/);
    await f.reopen();
    expect(await asOf(v2.offset)).toMatchObject({ attributes: { n: 2 }, version: 2 });
    expect((await f.call('object_history', { id: 'h' })).versions.map((v: { op: string }) => v.op)).toEqual(['put', 'delete', 'patch', 'put']);
  });

  test('once snapshots let the log drop a version, history and as-of say so instead of inventing it', async () => {
    const v1 = await f.call('object_put', { id: 'old', type: 'doc', attributes: { n: 1, pad: 'p'.repeat(1500) } });
    await f.call('object_patch', { id: 'old', set: { n: 2 } });
    // Three snapshots with small segments in between: the log before the older kept snapshot is deleted.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 4; i++) await f.call('object_put', { id: `fill${round}-${i}`, type: 'doc', attributes: { pad: 'p'.repeat(1500) } });
      await f.memory.store.snapshot();
    }
    expect(await f.memory.store.readTx(v1.offset)).toBeUndefined();
    await expectRefused(f, f.call('object_get_as_of', { id: 'old', offset: v1.offset }), 'not_found', /no longer in the log/);
    const history = await f.call('object_history', { id: 'old', include_attributes: true });
    expect(history.versions.map((v: { version: number; image: string }) => [v.version, v.image])).toEqual([[2, 'current'], [1, 'gone']]);
  });
});
