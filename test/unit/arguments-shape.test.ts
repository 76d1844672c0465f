import { describe, expect, test } from 'vitest';
import { argumentsShapeProblem } from '../../server/mcp/arguments-shape.js';
import { toolArgumentsDepthMax } from '../../server/mcp/limits.js';

function nested(levels: number, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { k: value };
  return value;
}

describe('argumentsShapeProblem', () => {
  test('ordinary arguments, proper surrogate pairs and nesting up to the limit pass', () => {
    expect(argumentsShapeProblem({ id: 'a', text: 'smile \u{1F600}', tags: ['x', 'y'], n: 1, nil: null })).toBeUndefined();
    expect(argumentsShapeProblem(nested(toolArgumentsDepthMax))).toBeUndefined();
    expect(argumentsShapeProblem(undefined)).toBeUndefined();
  });

  test('nesting past the limit is named with where it happened; ten thousand levels do not overflow the check', () => {
    expect(argumentsShapeProblem(nested(toolArgumentsDepthMax + 1))?.message).toContain(`the limit (toolArgumentsDepthMax) is ${toolArgumentsDepthMax}`);
    expect(argumentsShapeProblem({ a: { b: nested(10_000) } })?.message).toMatch(/^arguments nest deeper than \d+ levels at \.a\.b/);
  });

  test('a lone surrogate in a value or in a key is refused, naming the path', () => {
    expect(argumentsShapeProblem({ attributes: { s: 'a\ud800b' } })?.message).toContain('.attributes.s');
    expect(argumentsShapeProblem({ list: ['ok', 'x\udc00'] })?.message).toContain('.list[1]');
    expect(argumentsShapeProblem({ attributes: { ['k\udbff']: 1 } })?.message).toContain('a key in .attributes');
    expect(argumentsShapeProblem('\ud83d')?.message).toContain('arguments');
  });

  test('a "__proto__" key (an own key, as JSON.parse makes it) is refused, naming where; a value "__proto__" is fine', () => {
    expect(argumentsShapeProblem(JSON.parse('{"attributes":{"__proto__":{"role":"admin"},"a":1}}'))).toEqual({
      code: 'invalid_argument',
      message: '.attributes has the key "__proto__", which cannot be stored as data',
      hint: 'rename the key',
    });
    expect(argumentsShapeProblem(JSON.parse('{"__proto__":1}'))?.message).toMatch(/^arguments has the key/);
    expect(argumentsShapeProblem({ attributes: { name: '__proto__', constructor: 1 } })).toBeUndefined();
  });
});
