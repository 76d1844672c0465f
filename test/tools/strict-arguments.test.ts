/**
 * strictArguments (tools/strict-arguments.ts): every object a tool's arguments can hold refuses
 * unknown keys, through optionals, arrays and unions, keeping checks and descriptions; a zod
 * container it does not know fails where the tool is defined rather than staying loose.
 */
import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { strictArguments } from '../../tools/strict-arguments.js';

describe('strictArguments', () => {
  test('objects inside optionals, nullables, arrays and unions refuse unknown keys; checks and descriptions stay', () => {
    const inner = z.object({ a: z.string() }).describe('an inner object');
    const schema = strictArguments(z.object({
      list: z.array(inner).max(1).optional(),
      either: z.union([inner, z.string()]).nullable(),
    }));
    expect(schema.safeParse({ list: [{ a: 'x' }], either: null }).success).toBe(true);
    const issues = schema.safeParse({ list: [{ a: 'x', b: 1 }], either: { a: 'y', c: 2 }, d: 3 }).error!.issues;
    expect(issues.map((i) => [i.path.join('.'), i.message])).toEqual(expect.arrayContaining([
      ['list.0', 'Unrecognized key: "b"'],
      ['', 'Unrecognized key: "d"'],
    ]));
    expect(schema.safeParse({ either: { a: 'y', c: 2 } }).success).toBe(false);
    expect(schema.safeParse({ list: [{ a: 'x' }, { a: 'y' }], either: null }).success, 'the array keeps its max').toBe(false);
    const json = z.toJSONSchema(schema, { io: 'input' }) as any;
    expect(json.properties.list.items).toMatchObject({ description: 'an inner object', additionalProperties: false });
  });

  test('an object given a catchall on purpose, and a free-form unknown, stay free-form', () => {
    const schema = strictArguments(z.object({ loose: z.looseObject({ a: z.string() }), free: z.unknown() }));
    expect(schema.safeParse({ loose: { a: 'x', more: 1 }, free: { any: { key: 1 } } }).success).toBe(true);
  });

  test('a zod container it does not handle is an error at definition, naming where', () => {
    expect(() => strictArguments(z.object({ m: z.map(z.string(), z.object({})) }))).toThrow(/"map" at \(arguments\)\.m/);
  });
});
