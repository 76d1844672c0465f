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
