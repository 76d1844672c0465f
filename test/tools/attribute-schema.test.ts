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
