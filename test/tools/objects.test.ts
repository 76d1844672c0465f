import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import type { MemoryError } from '../../storage/errors.js';
import { defineReducer, type ReducerDef } from '../../storage/reducer.js';
import { Store } from '../../storage/store.js';
import { memoryModule, memoryTools } from '../../tools/index.js';
import { attributesBytesMax, relationsPerObjectMax, typeRecheckObjectsMax } from '../../tools/objects.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';
import { alice, bob, expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

const personSchema = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1 }, age: { type: 'integer', minimum: 0 }, email: { type: 'string', format: 'email' } },
  required: ['name'],
  additionalProperties: false,
};

function outputOf(tool: string) {
  return memoryTools.find((t) => t.name === tool)!.output;
}

describe('object_put and object_get', () => {
  test('put without an id creates an object; get returns exactly {id, type, attributes, version}', async () => {
    const put = await f.call('object_put', { type: 'note', attributes: { text: 'hello', tags: ['a'] } });
    expect(put).toEqual({ id: expect.stringMatching(/^obj_[0-9a-f]{16}$/), version: 1, offset: expect.any(Number) });
    expect(outputOf('object_put').parse(put)).toEqual(put);
    expect(put.offset).toBe(f.memory.store.lastOffset);
    const got = await f.call('object_get', { id: put.id });
    expect(got).toEqual({ id: put.id, type: 'note', attributes: { text: 'hello', tags: ['a'] }, version: 1 });
    expect(outputOf('object_get').parse(got)).toEqual(got);
  });

  test('put with an id replaces the object and bumps its version; expected_version guards the replace', async () => {
    const first = await f.call('object_put', { id: 'n-1', type: 'note', attributes: { v: 1 } });
    const second = await f.call('object_put', { id: 'n-1', type: 'note', attributes: { v: 2 }, expected_version: 1 });
    expect(second).toMatchObject({ id: 'n-1', version: 2 });
    expect(second.offset).toBeGreaterThan(first.offset);
    const conflict = await expectRefused(f, f.call('object_put', { id: 'n-1', type: 'note', attributes: { v: 3 }, expected_version: 1 }), 'version_conflict');
    expect(conflict.message).toMatch(/version 2, not 1/);
    expect(await f.call('object_get', { id: 'n-1' })).toMatchObject({ attributes: { v: 2 }, version: 2 });
  });

  test('expected_version 0 means create-only', async () => {
    await f.call('object_put', { id: 'once', type: 'note', attributes: {}, expected_version: 0 });
    await expectRefused(f, f.call('object_put', { id: 'once', type: 'note', attributes: {}, expected_version: 0 }), 'version_conflict');
    await f.call('object_put', { type: 'note', attributes: {}, expected_version: 0 }); // a new object, id generated
  });

  test('expected_version above 0 without an id is invalid_argument naming the missing id, not a conflict on a made-up one', async () => {
    await expectRefused(f, f.call('object_put', { type: 'note', attributes: {}, expected_version: 1 }), 'invalid_argument', /needs the object's id/);
  });

  test('bad input is invalid_argument or limit_exceeded and writes nothing', async () => {
    await expectRefused(f, f.call('object_put', { type: 'note' }), 'invalid_argument', /attributes/);
    await expectRefused(f, f.call('object_put', { type: 'note', attributes: [1, 2] }), 'invalid_argument');
    await expectRefused(f, f.call('object_put', { id: '../etc/passwd', type: 'note', attributes: {} }), 'invalid_argument', /object id/);
    await expectRefused(f, f.call('object_put', { id: 'x'.repeat(129), type: 'note', attributes: {} }), 'invalid_argument');
    await expectRefused(f, f.call('object_put', { type: 'bad type!', attributes: {} }), 'invalid_argument');
    await expectRefused(f, f.call('object_put', { type: 'note', attributes: {}, expected_version: 1.5 }), 'invalid_argument');
    await expectRefused(f, f.call('object_put', { type: 'note', attributes: { big: 'x'.repeat(attributesBytesMax) } }), 'limit_exceeded');
    await expectRefused(f, f.call('object_put', { type: 'note', attributes: { big: 'x'.repeat(600 * 1024) } }), 'limit_exceeded');
  });

  test('unknown ids are not_found', async () => {
    await expectRefused(f, f.call('object_get', { id: 'nope' }), 'not_found');
    await expectRefused(f, f.call('object_patch', { id: 'nope', set: { a: 1 } }), 'not_found');
    await expectRefused(f, f.call('object_delete', { id: 'nope' }), 'not_found');
  });
});

describe('object types', () => {
  test('a defined type is enforced on put and patch; the schema itself is checked when defined', async () => {
    const defined = await f.call('type_define', { name: 'person', schema: personSchema, description: 'A person' });
    expect(defined).toMatchObject({ name: 'person', version: 1, changed: true });
    await expectRefused(f, f.call('object_put', { type: 'person', attributes: { name: 'Ann', age: 'old' } }), 'invalid_argument', /attributes\/age must be integer/);
    await expectRefused(f, f.call('object_put', { type: 'person', attributes: { age: 3 } }), 'invalid_argument', /name/);
    await expectRefused(f, f.call('object_put', { type: 'person', attributes: { name: 'Ann', email: 'not-an-email' } }), 'invalid_argument', /format/);
    const ann = await f.call('object_put', { id: 'ann', type: 'person', attributes: { name: 'Ann', age: 30 } });
    expect(ann.version).toBe(1);
    await expectRefused(f, f.call('object_patch', { id: 'ann', set: { age: -1 } }), 'invalid_argument', /age/);
    await expectRefused(f, f.call('object_patch', { id: 'ann', unset: ['name'] }), 'invalid_argument', /name/);
    await expectRefused(f, f.call('object_patch', { id: 'ann', set: { shoe: 42 } }), 'invalid_argument', /additional/);
    expect(await f.call('object_patch', { id: 'ann', set: { age: 31 }, unset: ['email'] })).toMatchObject({ version: 2 });
  });

  test('an invalid JSON Schema is refused at type_define', async () => {
    await expectRefused(f, f.call('type_define', { name: 't', schema: { type: 'objekt' } }), 'invalid_argument', /schema/);
    await expectRefused(f, f.call('type_define', { name: 't', schema: { type: 'object', properties: { a: { minimum: 'zero' } } } }), 'invalid_argument');
    await expectRefused(f, f.call('type_define', { name: 't', schema: { $ref: 'https://example.com/remote.json' } }), 'invalid_argument');
    await expectRefused(f, f.call('type_define', { name: 't', schema: { type: 'object', unknownKeyword: 1 } }), 'invalid_argument');
  });

  test('a schema whose $refs loop without descending into the value is refused at type_define, naming the loop; nothing is stored', async () => {
    const mutual = { definitions: { a: { allOf: [{ $ref: '#/definitions/b' }] }, b: { allOf: [{ $ref: '#/definitions/a' }] } }, $ref: '#/definitions/a' };
    const error = await expectRefused(f, f.call('type_define', { name: 'loop', schema: mutual }), 'invalid_argument');
    expect(error.message).toBe('schema has a $ref loop that never descends into the value: '
      + '#/definitions/a -> #/definitions/a/allOf/0 -> #/definitions/b -> #/definitions/b/allOf/0 -> #/definitions/a');
    expect(error.hint).toMatch(/through properties, items/);
    const direct = { definitions: { n: { $ref: '#/definitions/n' } }, $ref: '#/definitions/n' };
    await expectRefused(f, f.call('type_define', { name: 'loop', schema: direct }), 'invalid_argument', /\$ref loop .*: #\/definitions\/n -> #\/definitions\/n$/);
    await expectRefused(f, f.call('type_define', { name: 'loop', schema: { $ref: '#' } }), 'invalid_argument', /\$ref loop .*: # -> #$/);
    // With no type stored, a put of that type is free-form, not an internal error.
    await f.call('object_put', { type: 'loop', attributes: { any: 1 } });
  });

  test('valid JSON Schemas Ajv\'s lints refused are accepted: required without properties, recursion through the root', async () => {
    await f.call('type_define', { name: 'has_a', schema: { type: 'object', required: ['a'] } });
    await expectRefused(f, f.call('object_put', { type: 'has_a', attributes: {} }), 'invalid_argument', /must have required property 'a'/);
    await f.call('object_put', { type: 'has_a', attributes: { a: null } });
    const tree = { type: 'object', properties: { kids: { type: 'array', items: { $ref: '#' } } } };
    await f.call('type_define', { name: 'tree', schema: tree });
    await f.call('object_put', { type: 'tree', attributes: { kids: [{ kids: [] }, {}] } });
    await expectRefused(f, f.call('object_put', { type: 'tree', attributes: { kids: [{ kids: 'none' }] } }), 'invalid_argument', /kids\/0\/kids must be array/);
  });

  test('redefining a type that existing objects violate is refused; an identical redefinition changes nothing', async () => {
    await f.call('type_define', { name: 'person', schema: personSchema });
    await f.call('object_put', { id: 'kid', type: 'person', attributes: { name: 'Kid', age: 7 } });
    const adultsOnly = { ...personSchema, properties: { ...personSchema.properties, age: { type: 'integer', minimum: 18 } } };
    await expectRefused(f, f.call('type_define', { name: 'person', schema: adultsOnly }), 'invalid_argument', /object kid/);
    const before = f.mark();
    const same = await f.call('type_define', { name: 'person', schema: personSchema });
    expect(same).toMatchObject({ version: 1, changed: false });
    expect(f.memory.store.stateHash()).toBe(before.hash);
    const wider = await f.call('type_define', { name: 'person', schema: { type: 'object' }, description: 'anything' });
    expect(wider).toMatchObject({ version: 2, changed: true });
    expect(await f.call('type_get', { name: 'person' })).toEqual({ name: 'person', version: 2, description: 'anything', schema: { type: 'object' } });
  });

  test('past typeRecheckObjectsMax objects a new schema is refused naming the limit, but a new description alone is taken', async () => {
    await f.call('type_define', { name: 'many', schema: { type: 'object' }, description: 'one' });
    for (let i = 0; i <= typeRecheckObjectsMax; i++) await f.call('object_put', { id: `m${i}`, type: 'many', attributes: { i } });
    await expectRefused(f, f.call('type_define', { name: 'many', schema: { type: 'object', required: ['i'] } }), 'limit_exceeded', /typeRecheckObjectsMax/);
    const described = await f.call('type_define', { name: 'many', schema: { type: 'object' }, description: 'two' });
    expect(described).toMatchObject({ version: 2, changed: true });
    expect(await f.call('type_get', { name: 'many' })).toMatchObject({ version: 2, description: 'two', schema: { type: 'object' } });
  }, 60_000);

  test('type_list pages with an opaque cursor', async () => {
    for (const name of ['a1', 'b2', 'c3', 'd4', 'e5']) await f.call('type_define', { name, schema: { type: 'object' } });
    const names: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await f.call('type_list', cursor ? { limit: 2, cursor } : { limit: 2 });
      expect(page.types.length).toBeLessThanOrEqual(2);
      names.push(...page.types.map((t: { name: string }) => t.name));
      cursor = page.next_cursor;
    } while (cursor);
    expect(names).toEqual(['a1', 'b2', 'c3', 'd4', 'e5']);
    await expectRefused(f, f.call('type_get', { name: 'zz' }), 'not_found');
  });
});

describe('object_patch', () => {
  test('sets and unsets top-level attributes; refuses an empty or contradictory patch', async () => {
    await f.call('object_put', { id: 'p', type: 'note', attributes: { a: 1, b: 2 } });
    expect(await f.call('object_patch', { id: 'p', set: { c: 3 }, unset: ['a'], expected_version: 1 })).toMatchObject({ version: 2 });
    expect((await f.call('object_get', { id: 'p' })).attributes).toEqual({ b: 2, c: 3 });
    await expectRefused(f, f.call('object_patch', { id: 'p' }), 'invalid_argument', /set or unset/);
    await expectRefused(f, f.call('object_patch', { id: 'p', set: { b: 1 }, unset: ['b'] }), 'invalid_argument', /both/);
    await expectRefused(f, f.call('object_patch', { id: 'p', set: { d: 1 }, expected_version: 1 }), 'version_conflict');
  });
});

describe('relations and delete', () => {
  test('link needs both ends; linking twice is a no-op; unlink of a missing relation is not_found', async () => {
    await f.call('object_put', { id: 'a', type: 'node', attributes: {} });
    await f.call('object_put', { id: 'b', type: 'node', attributes: {} });
    await expectRefused(f, f.call('object_link', { src: 'a', kind: 'knows', dst: 'zz' }), 'not_found', /dst object zz/);
    expect(await f.call('object_link', { src: 'a', kind: 'knows', dst: 'b' })).toMatchObject({ created: true });
    const before = f.mark();
    expect(await f.call('object_link', { src: 'a', kind: 'knows', dst: 'b' })).toMatchObject({ created: false });
    expect(f.memory.store.stateHash()).toBe(before.hash);
    await f.call('object_unlink', { src: 'a', kind: 'knows', dst: 'b' });
    await expectRefused(f, f.call('object_unlink', { src: 'a', kind: 'knows', dst: 'b' }), 'not_found');
  });

  test('delete removes the object with its relations (both directions) and its embedding in one transaction', async () => {
    for (const id of ['a', 'b', 'c']) await f.call('object_put', { id, type: 'node', attributes: {} });
    await f.call('object_link', { src: 'a', kind: 'k', dst: 'b' });
    await f.call('object_link', { src: 'c', kind: 'k', dst: 'a' });
    await f.call('object_link', { src: 'b', kind: 'k', dst: 'c' });
    await f.call('embedding_put', { object_id: 'a', model: 'm', vector: [1, 0] });
    const offsets: number[] = [];
    const stop = f.memory.store.onCommit((txs) => offsets.push(...txs.map((t) => t.offset)));
    const deleted = await f.call('object_delete', { id: 'a', expected_version: 1 });
    stop();
    expect(deleted).toMatchObject({ version: 2, relations_removed: 2 });
    expect(offsets).toEqual([deleted.offset]);
    expect(f.memory.vectors.size).toBe(0);
    const left = await f.memory.store.read((v) => [...v.table('relations').scan()].map((r) => `${r['src']}>${r['dst']}`));
    expect(left).toEqual(['b>c']);
    await expectRefused(f, f.call('object_get', { id: 'a' }), 'not_found');
  });
});

describe('idempotency keys', () => {
  test('a retried write with the same key returns the first result and writes nothing', async () => {
    const first = await f.call('object_put', { id: 'i', type: 'note', attributes: { n: 1 }, idempotency_key: 'req-1' });
    const before = f.mark();
    const again = await f.call('object_put', { id: 'i', type: 'note', attributes: { n: 1 }, idempotency_key: 'req-1' });
    expect(again).toEqual(first);
    expect(f.mark()).toEqual(before);
    const generated = await f.call('object_put', { type: 'note', attributes: {}, idempotency_key: 'req-2' });
    expect(await f.call('object_put', { type: 'note', attributes: {}, idempotency_key: 'req-2' })).toEqual(generated);
  });

  test('keys are scoped per caller and per tool, and survive a restart', async () => {
    const mine = await f.call('object_put', { id: 'k', type: 'note', attributes: {}, idempotency_key: 'same' }, alice);
    const theirs = await f.call('object_put', { id: 'k', type: 'note', attributes: {}, idempotency_key: 'same' }, bob);
    expect(theirs.version).toBe(2);
    const patched = await f.call('object_patch', { id: 'k', set: { x: 1 }, idempotency_key: 'same' }, alice);
    expect(patched.version).toBe(3);
    await f.reopen();
    const before = f.mark();
    expect(await f.call('object_put', { id: 'k', type: 'note', attributes: {}, idempotency_key: 'same' }, alice)).toEqual(mine);
    expect(f.mark()).toEqual(before);
  });

  test('a key reused with other arguments is a conflict, nothing written; the same arguments in another key order replay', async () => {
    const first = await f.call('object_put', { id: 'r', type: 'note', attributes: { a: 1, b: 2 }, idempotency_key: 'req-3' });
    const error = await expectRefused(f, f.call('object_put', { id: 'r2', type: 'note', attributes: { a: 1, b: 2 }, idempotency_key: 'req-3' }), 'conflict');
    expect(error.message).toContain(`first used (offset ${first.offset}) with other arguments`);
    await expectRefused(f, f.call('object_put', { id: 'r', type: 'note', attributes: { a: 1, b: 3 }, idempotency_key: 'req-3' }), 'conflict');
    expect(await f.call('object_put', { id: 'r', type: 'note', attributes: { b: 2, a: 1 }, idempotency_key: 'req-3' })).toEqual(first);
    // After a restart too: the first call's arguments are read from its frame.
    await f.reopen();
    await expectRefused(f, f.call('object_put', { id: 'r2', type: 'note', attributes: {}, idempotency_key: 'req-3' }), 'conflict');
  });

  test('a malformed key is invalid_argument', async () => {
    await expectRefused(f, f.call('object_put', { type: 'note', attributes: {}, idempotency_key: '' }), 'invalid_argument');
    await expectRefused(f, f.call('object_put', { type: 'note', attributes: {}, idempotency_key: 'k'.repeat(129) }), 'invalid_argument');
  });
});

describe('answers computed on a write not yet durable', () => {
  // An error is an answer too: not_found or version_conflict seen on a write still being synced reveals it.
  test('a read or write refused on a write that then fails (ENOSPC) answers on the durable state instead', async () => {
    const fl = new FaultyFileLayer();
    const g = await openFixture({ fileLayer: fl });
    try {
      await g.call('object_put', { id: 'x', type: 'note', attributes: { n: 1 } });
      fl.enospcWrites = 1;
      const doomed = g.call('object_delete', { id: 'x' });
      // Both see x deleted, by a delete whose write fails: x was never deleted.
      const get = g.call('object_get', { id: 'x' });
      const patch = g.call('object_patch', { id: 'x', set: { n: 2 }, expected_version: 1 });
      await expect(doomed).rejects.toMatchObject({ code: 'unavailable' });
      expect(await get).toEqual({ id: 'x', type: 'note', attributes: { n: 1 }, version: 1 });
      expect(await patch).toMatchObject({ id: 'x', version: 2 });
      expect(await g.call('object_get', { id: 'x' })).toMatchObject({ attributes: { n: 2 }, version: 2 });
    } finally {
      await g.close();
    }
  });
});

test('objects, types and relations survive a restart', async () => {
  await f.call('type_define', { name: 'person', schema: personSchema });
  await f.call('object_put', { id: 'ann', type: 'person', attributes: { name: 'Ann' } });
  await f.call('object_put', { id: 'bo', type: 'person', attributes: { name: 'Bo' } });
  await f.call('object_link', { src: 'ann', kind: 'knows', dst: 'bo' });
  const hash = f.memory.store.stateHash();
  await f.reopen();
  expect(f.memory.store.stateHash()).toBe(hash);
  expect(await f.call('object_get', { id: 'ann' })).toMatchObject({ attributes: { name: 'Ann' } });
  await expectRefused(f, f.call('object_put', { type: 'person', attributes: { name: 3 } }), 'invalid_argument');
});

describe('relations per object', () => {
  // Seeded in bulk (object_link alone would take 10,000 transactions): relations as heavy as rows get.
  const seedRelations = defineReducer({
    name: 'test_seed_relations',
    args: z.object({ src: z.string(), dst: z.string(), n: z.number() }),
    run(ctx, a): Record<string, never> {
      for (let k = 0; k < a.n; k++) {
        ctx.table('relations').insert({ src: a.src, kind: `k${k}`.padEnd(64, 'k'), dst: a.dst, created_at_ms: ctx.timestampMs, created_by: ctx.caller.subject });
      }
      return {};
    },
  });

  test('an object takes at most relationsPerObjectMax relations in and out together, and then can still be deleted', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-relations-'));
    const store = await Store.open({ dir, module: { ...memoryModule, reducers: [...memoryModule.reducers, seedRelations as ReducerDef] } });
    try {
      const caller = { tenant: 'acme', subject: '日'.repeat(255) };
      const [hub, s0, s1, s2] = ['h', '0', '1', '2'].map((c) => c.repeat(128)) as [string, string, string, string];
      for (const id of [hub, s0, s1, s2]) await store.call('object_put', { id, type: 'node', attributes: {} }, caller);
      // Incoming only: a hub that links to nothing is bounded too.
      for (const src of [s0, s1]) await store.call('test_seed_relations', { src, dst: hub, n: relationsPerObjectMax / 2 }, caller);
      const refused = (call: Promise<unknown>) => call.then(() => { throw new Error('the link was accepted'); }, (e: MemoryError) => e);
      const asDst = await refused(store.call('object_link', { src: s2, kind: 'k', dst: hub }, caller));
      expect(asDst).toMatchObject({ code: 'limit_exceeded', message: expect.stringMatching(/dst object h+ .*relationsPerObjectMax/), hint: expect.stringMatching(/unlink/) });
      expect(await refused(store.call('object_link', { src: hub, kind: 'k', dst: s2 }, caller))).toMatchObject({ code: 'limit_exceeded', message: expect.stringMatching(/src object h+ /) });
      expect((await store.call('object_link', { src: s2, kind: 'k', dst: s0 }, caller)).result).toEqual({ created: true });
      expect((await store.call('object_delete', { id: hub }, caller)).result).toMatchObject({ relations_removed: relationsPerObjectMax });
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
