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

  test('so does every nested object schema in tools/list; free-form values carry no additionalProperties', () => {
    const find = toolEntryOf(memoryTools.find((t) => t.name === 'object_find')!).inputSchema as any;
    expect(find.properties.order_by.additionalProperties).toBe(false);
    expect(find.properties.where.items.additionalProperties).toBe(false);
    const move = toolEntryOf(memoryTools.find((t) => t.name === 'bpmn_move_token')!).inputSchema as any;
    expect(move.properties.user_task.additionalProperties).toBe(false);
    const observe = toolEntryOf(memoryTools.find((t) => t.name === 'ar_observe')!).inputSchema as any;
    expect(observe.properties.anchors.items.additionalProperties).toBe(false);
    expect(observe.properties.payload).toEqual({ type: 'object' });
    const put = toolEntryOf(memoryTools.find((t) => t.name === 'object_put')!).inputSchema as any;
    expect(put.properties.attributes).toEqual({ type: 'object' });
  });

  test('an unknown field in a nested object is invalid_argument naming the key and its path; nothing is written', async () => {
    await f.call('object_put', { type: 'note', attributes: { n: 1 } });
    const instance = (await f.call('bpmn_start', { definition: 'invoice', start_node: 'start' }))['instance'];
    const refusals: [string, Record<string, unknown>, string][] = [
      ['object_find', { type: 'note', order_by: { path: 'n', descending: true } }, 'order_by: Unrecognized key: "descending"'],
      ['object_find', { type: 'note', where: [{ path: 'n', op: 'eq', value: 1, negate: true }] }, 'where.0: Unrecognized key: "negate"'],
      ['embedding_search', { model: 'm', vector: [1], where: [{ path: 'n', op: 'eq', value: 1, negate: true }] }, 'where.0: Unrecognized key: "negate"'],
      ['ar_observe', { surface: 's', pose: [0, 0, 0, 0, 0, 0, 1], anchors: [{ id: 'cup', label: 'cup', confidence: 0.9 }] }, 'anchors.0: Unrecognized key: "confidence"'],
      ['bpmn_move_token', { instance, token: 'tok_1', to: 'review', user_task: { name: 'Review', due: '2030-01-01' } }, 'user_task: Unrecognized key: "due"'],
    ];
    for (const [tool, args, message] of refusals) {
      const error = await expectRefused(f, f.call(tool, args), 'invalid_argument');
      expect(error.message, tool).toContain(message);
    }
  });

  test('free-form JSON values stay free-form: any keys in attributes, variables and a type\'s schema', async () => {
    await f.call('type_define', { name: 'free', schema: { type: 'object', properties: { deep: { type: 'object' } }, title: 'free' } });
    await f.call('object_put', { type: 'free', attributes: { deep: { any: { key: 1 } } } });
    await f.call('bpmn_start', { definition: 'd', start_node: 's', variables: { any: { key: true } } });
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
