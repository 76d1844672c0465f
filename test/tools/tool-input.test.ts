/**
 * What every tool does with its raw arguments (tools/define-tool.ts): unknown fields are refused
 * by name (a misspelt optional argument must not be silently ignored), and the one size limit,
 * toolArgumentsBytesMax, is named where it is met, in bytes as the server counts them.
 */
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { memoryTools } from '../../tools/index.js';
import { toolArgumentsBytesMax } from '../../tools/tool.js';
import { toolArgumentsBytesMax as serverLimit } from '../../server/mcp/limits.js';
import { toolEntryOf } from '../../server/mcp/tool-schema.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
});
afterEach(async () => {
  await f.close();
});

describe('tool arguments', () => {
  test('an unknown field is invalid_argument naming it, for a write tool and a read tool; nothing is written', async () => {
    const write = await expectRefused(f, f.call('object_put', { type: 'note', attributes: {}, atributes: { text: 'typo' } }), 'invalid_argument');
    expect(write.message).toContain('atributes');
    const read = await expectRefused(f, f.call('object_get', { id: 'obj_0000000000000000', verison: 2 }), 'invalid_argument');
    expect(read.message).toContain('verison');
  });

  test('every tool\'s input schema says so (additionalProperties false in tools/list), so a client can see it before calling', () => {
    for (const tool of memoryTools) {
      expect(tool.input.safeParse({ surely_not_an_argument: 1 }).success, tool.name).toBe(false);
      expect(toolEntryOf(tool).inputSchema['additionalProperties'], tool.name).toBe(false);
    }
  });

  test('arguments past toolArgumentsBytesMax (bytes, not characters) are limit_exceeded naming the limit; the server\'s limit is the same one', async () => {
    expect(serverLimit).toBe(toolArgumentsBytesMax);
    // Under the limit in characters, over it in bytes: 3 bytes of UTF-8 each.
    const text = '€'.repeat(Math.ceil(toolArgumentsBytesMax / 3) + 10);
    expect(text.length).toBeLessThan(toolArgumentsBytesMax);
    const error = await expectRefused(f, f.call('object_put', { type: 'note', attributes: { text } }), 'limit_exceeded');
    expect(error.message).toContain(`the limit (toolArgumentsBytesMax) is ${toolArgumentsBytesMax}`);
  });
});
