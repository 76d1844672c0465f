import { describe, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { checkAttributes, compileAttributeSchema } from '../../tools/attribute-schema.js';

function refusal(run: () => void): MemoryError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(MemoryError);
    return error as MemoryError;
  }
  throw new Error('expected a refusal');
}

describe('attribute schemas: patterns run in linear time', () => {
  // With a backtracking engine, `^(a+)+$` against 40 a's and a b takes ~2^40 steps: this test
  // would never finish. RE2 answers at once.
  test('a catastrophic-backtracking pattern is checked against a hostile string and refused cleanly', () => {
    const schema = { type: 'object', properties: { name: { type: 'string', pattern: '^(a+)+$' } } };
    const hostile = `${'a'.repeat(40)}b`;
    const error = refusal(() => checkAttributes('evil', 1, schema, { name: hostile }));
    expect(error.code).toBe('invalid_argument');
    expect(error.message).toMatch(/must match pattern/);
    expect(() => checkAttributes('evil', 1, schema, { name: 'a'.repeat(40) })).not.toThrow();
  });

  test('patternProperties keys are matched with the same engine', () => {
    const schema = { type: 'object', patternProperties: { '^(x+x+)+y$': { type: 'number' } } };
    expect(() => checkAttributes('keys', 1, schema, { [`${'x'.repeat(40)}y`]: 1 })).not.toThrow();
    expect(refusal(() => checkAttributes('keys', 1, schema, { [`${'x'.repeat(40)}y`]: 'one' })).code).toBe('invalid_argument');
    expect(() => checkAttributes('keys', 1, schema, { [`${'x'.repeat(40)}z`]: 'unmatched keys are free' })).not.toThrow();
  });

  test('an unanchored pattern searches, as JSON Schema says', () => {
    const schema = { type: 'string', pattern: '[0-9]{3}' };
    expect(compileAttributeSchema(schema)('abc123def')).toBe(true);
    expect(compileAttributeSchema(schema)('abc12def')).toBe(false);
  });

  test('lookaround and backreferences are refused when the type is defined, with the reason', () => {
    for (const pattern of ['^(?=a)a$', '(a)\\1']) {
      const error = refusal(() => compileAttributeSchema({ type: 'string', pattern }));
      expect(error.code).toBe('invalid_argument');
      expect(error.message).toMatch(/not supported \(RE2 syntax/);
    }
  });
});

describe('attribute schemas: a $ref loop that never descends into the value', () => {
  const loops: [string, Record<string, unknown>, string][] = [
    ['root to itself', { $ref: '#' }, '# -> #'],
    ['through anyOf, with a way out for null', { anyOf: [{ type: 'null' }, { $ref: '#' }] }, '# -> #/anyOf/1 -> #'],
    ['through not and if/then', { definitions: { a: { not: { $ref: '#/definitions/b' } }, b: { if: { type: 'string' }, then: { $ref: '#/definitions/a' } } } },
      '#/definitions/a -> #/definitions/a/not -> #/definitions/b -> #/definitions/b/then -> #/definitions/a'],
    ['through dependencies', { type: 'object', dependencies: { a: { $ref: '#' } } }, '# -> #/dependencies/a -> #'],
    ['to a plain-name fragment', { definitions: { n: { $id: '#n', allOf: [{ $ref: '#n' }] } } }, '#/definitions/n -> #/definitions/n/allOf/0 -> #/definitions/n'],
    ['through an escaped pointer', { definitions: { 'a/b': { $ref: '#/definitions/a~1b' } } }, '#/definitions/a~1b -> #/definitions/a~1b'],
  ];
  for (const [name, schema, loop] of loops) {
    test(`${name}: refused when defined, naming the loop`, () => {
      const error = refusal(() => compileAttributeSchema(schema));
      expect(error.code).toBe('invalid_argument');
      expect(error.message).toBe(`schema has a $ref loop that never descends into the value: ${loop}`);
    });
  }

  test('recursion through properties or items is not a loop: each turn takes a part of the value', () => {
    const list = { definitions: { node: { type: 'object', properties: { next: { $ref: '#/definitions/node' } } } }, $ref: '#/definitions/node' };
    expect(compileAttributeSchema(list)({ next: { next: {} } })).toBe(true);
    expect(compileAttributeSchema({ type: 'array', items: { $ref: '#' } })([[[]], []])).toBe(true);
    expect(compileAttributeSchema({ type: 'array', items: { $ref: '#' } })([[1]])).toBe(false);
  });

  test('a stored type whose schema loops (defined before the check) fails a write with invalid_argument naming the type, not a stack overflow', () => {
    const mutual = { definitions: { a: { allOf: [{ $ref: '#/definitions/b' }] }, b: { allOf: [{ $ref: '#/definitions/a' }] } }, $ref: '#/definitions/a' };
    const error = refusal(() => checkAttributes('looped', 3, mutual, {}, 'obj_1'));
    expect(error.code).toBe('invalid_argument');
    expect(error.message).toMatch(/^type looped \(version 3\) has a schema that is no longer accepted: schema has a \$ref loop/);
    expect(error.hint).toMatch(/^redefine the type with type_define/);
  });

  test('attributes nested past the stack are invalid_argument, not a RangeError', () => {
    let deep: unknown = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const lists = { definitions: { list: { type: 'array', items: { $ref: '#/definitions/list' } } }, $ref: '#/definitions/list' };
    const error = refusal(() => checkAttributes('nested', 1, lists, deep));
    expect(error.code).toBe('invalid_argument');
    expect(error.message).toMatch(/out of stack/);
  });

  test('a schema nested past the stack is invalid_argument, not a RangeError', () => {
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 3000; i++) deep = { not: deep };
    expect(refusal(() => compileAttributeSchema(deep)).code).toBe('invalid_argument');
  });

  test('required may name a property the schema does not describe (valid JSON Schema)', () => {
    const validate = compileAttributeSchema({ type: 'object', required: ['a'] });
    expect(validate({ a: 1 })).toBe(true);
    expect(validate({})).toBe(false);
  });

  test('a schema with an $id recursing through its root compiles again and again (each compile is forgotten)', () => {
    for (let i = 0; i < 2; i++) expect(compileAttributeSchema({ $id: 'https://example.com/tree', type: 'array', items: { $ref: '#' } })([[]])).toBe(true);
  });
});

describe('attribute schemas: a root $id', () => {
  test("a meta-schema's $id is refused without removing that meta-schema: schemas of every draft still compile", () => {
    const metas = ['http://json-schema.org/draft-07/schema#', 'http://json-schema.org/draft-07/schema'];
    for (const $id of metas) expect(refusal(() => compileAttributeSchema({ $id, type: 'object' })).code).toBe('invalid_argument');
    const draft2020 = 'https://json-schema.org/draft/2020-12/schema';
    for (const $id of [draft2020, 'https://json-schema.org/draft/2020-12/meta/core']) {
      expect(refusal(() => compileAttributeSchema({ $schema: draft2020, $id, type: 'object' })).code).toBe('invalid_argument');
    }
    expect(compileAttributeSchema({ type: 'object', properties: { a: { type: 'string' } } })({ a: 'x' })).toBe(true);
    expect(compileAttributeSchema({ $schema: draft2020, type: 'object' })({})).toBe(true);
    // The meta-schema still checks schemas, too.
    expect(refusal(() => compileAttributeSchema({ type: 'object', properties: { a: { minLength: -1 } } })).message).toMatch(/minLength/);
  });

  test('a non-string $id is invalid_argument, not a TypeError', () => {
    for (const $id of [5, true, {}, ['x']]) expect(refusal(() => compileAttributeSchema({ $id, type: 'object' })).code).toBe('invalid_argument');
  });

  test("a nested $id is not kept: another schema's $ref to it is refused as in a fresh process, not resolved into that schema", () => {
    const refersToIt = { type: 'object', properties: { a: { type: 'integer' }, b: { $ref: 'https://example.com/nested' } } };
    const fresh = refusal(() => compileAttributeSchema(refersToIt));
    expect(fresh.message).toMatch(/can't resolve reference/);
    for (let i = 0; i < 2; i++) compileAttributeSchema({ type: 'object', properties: { a: { $id: 'https://example.com/nested', type: 'string' } } });
    expect(refusal(() => compileAttributeSchema(refersToIt)).message).toBe(fresh.message);
  });

  test('a schema with an $id of its own compiles, and again: it is not kept', () => {
    for (let i = 0; i < 2; i++) expect(compileAttributeSchema({ $id: 'https://example.com/person', type: 'object' })({})).toBe(true);
  });
});

describe('attribute schemas: the JSON Schema agents write', () => {
  test('valid schemas that strict linting used to refuse are accepted, and validate as JSON Schema says', () => {
    const untyped = compileAttributeSchema({ properties: { title: { type: 'string' } }, required: ['title'] });
    expect(untyped({ title: 'x' })).toBe(true);
    expect(untyped({})).toBe(false);
    expect(untyped('not an object')).toBe(true); // `properties` and `required` apply to objects only
    const tuple = compileAttributeSchema({ type: 'object', properties: { pair: { type: 'array', items: [{ type: 'string' }, { type: 'number' }] } } });
    expect(tuple({ pair: ['a', 1] })).toBe(true);
    expect(tuple({ pair: [1, 'a'] })).toBe(false);
    const union = compileAttributeSchema({ type: 'object', properties: { n: { type: ['string', 'number'], minLength: 2 } } });
    expect(union({ n: 7 })).toBe(true);
    expect(union({ n: 'ab' })).toBe(true);
    expect(union({ n: 'a' })).toBe(false);
  });

  test('multipleOf a decimal holds for the decimals that are its multiples, despite binary floating point', () => {
    // 0.07 / 0.01 is 7.000000000000001 in doubles: a plain integer check refused 0.07, 1.15 and 19.99 as cents.
    const cents = compileAttributeSchema({ type: 'object', properties: { price: { type: 'number', multipleOf: 0.01 } } });
    for (const price of [0, 0.07, 0.1, 0.3, 1.15, 19.99, 1234.56, -4.35]) expect(cents({ price }), String(price)).toBe(true);
    for (const price of [0.075, 0.001, 19.995, 0.0100001]) expect(cents({ price }), String(price)).toBe(false);
    const tenths = compileAttributeSchema({ type: 'number', multipleOf: 0.1 });
    expect([0.3, 0.7, 2.2].map((n) => tenths(n))).toEqual([true, true, true]);
    expect([0.35, 0.01].map((n) => tenths(n))).toEqual([false, false]);
    const threes = compileAttributeSchema({ type: 'integer', multipleOf: 3 });
    expect([9, 10].map((n) => threes(n))).toEqual([true, false]);
  });

  test('$schema picks the draft: 2020-12 and 2019-09 keywords work there, draft-07 is the default', () => {
    const strictObject = { type: 'object', properties: { a: { type: 'string' } }, unevaluatedProperties: false };
    for (const uri of ['https://json-schema.org/draft/2020-12/schema', 'https://json-schema.org/draft/2019-09/schema']) {
      const validate = compileAttributeSchema({ $schema: uri, ...strictObject });
      expect(validate({ a: 'x' }), uri).toBe(true);
      expect(validate({ a: 'x', b: 1 }), uri).toBe(false);
    }
    const prefixed = compileAttributeSchema({ $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'array', prefixItems: [{ type: 'string' }], items: false });
    expect(prefixed(['a'])).toBe(true);
    expect(prefixed(['a', 'b'])).toBe(false);
    expect(compileAttributeSchema({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object' })({})).toBe(true);
    // Without $schema a 2019+ keyword is unknown: refused, saying how to use it.
    const unknown = refusal(() => compileAttributeSchema(strictObject));
    expect(unknown.message).toContain('unknown keyword: "unevaluatedProperties"');
    expect(unknown.hint).toContain('2020-12');
  });

  test('a misspelt keyword and an unsupported draft are refused with what to do', () => {
    expect(refusal(() => compileAttributeSchema({ type: 'object', requried: ['a'] })).hint).toContain('spelling');
    const draft4 = refusal(() => compileAttributeSchema({ $schema: 'http://json-schema.org/draft-04/schema#', type: 'object' }));
    expect(draft4.message).toContain('supported: draft-07 (the default), 2019-09 or 2020-12');
    expect(refusal(() => compileAttributeSchema({ $schema: 42, type: 'object' })).code).toBe('invalid_argument');
  });
});
