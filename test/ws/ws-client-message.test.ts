/**
 * Client messages of the WebSocket protocol are checked before anything acts on them: a value
 * that is not an object (a typed array or a DataView, which a msgpack client's ext 0x74 decodes
 * to, included) is refused with the message that names what was expected.
 */
import { Packr } from 'msgpackr';
import { describe, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { wsLimitsDefault } from '../../server/ws/limits.js';
import { parseClientMessage } from '../../server/ws/protocol.js';
import { compileQuery } from '../../server/ws/query.js';
import { decodeClientMessage } from '../../server/ws/wire-format.js';
import { objectsTable } from '../../tools/objects.js';

function refusedWith(value: unknown, text: RegExp): void {
  let error: unknown;
  try {
    parseClientMessage(value, wsLimitsDefault);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(MemoryError);
  expect((error as MemoryError).code).toBe('invalid_argument');
  expect((error as MemoryError).message).toMatch(text);
}

describe('parseClientMessage', () => {
  test('a message that is not an object is refused as such', () => {
    for (const value of [null, 'subscribe', ['subscribe'], new Uint8Array(2), new Float32Array(2), new Int16Array(0), new DataView(new ArrayBuffer(2))]) {
      refusedWith(value, /^a message is an object with a type$/);
    }
  });

  test('a query that is not an object is refused by its place in the list', () => {
    const query = { id: 'q1', table: 'objects' };
    expect(parseClientMessage({ type: 'subscribe', queries: [query] }, wsLimitsDefault)).toMatchObject({ type: 'subscribe', queries: [query] });
    for (const value of [new Int16Array(0), new Float32Array([1]), 'q1']) {
      refusedWith({ type: 'subscribe', queries: [query, value] }, /^subscribe: queries\[1\] must be an object$/);
    }
  });

  test('a msgpack frame whose where is a timestamp (ext -1), a Set (ext 0x73) or a RegExp (ext 0x78) is refused, not read as "every row"', () => {
    const objects = objectsTable;
    const packr = new Packr({ useRecords: false, moreTypes: true });
    for (const where of [new Date(0), new Set(['type']), /task/]) {
      const frame = packr.pack({ type: 'subscribe', queries: [{ id: 'q1', table: 'objects', where }] });
      const message = parseClientMessage(decodeClientMessage(frame, true), wsLimitsDefault);
      if (message.type !== 'subscribe') throw new Error('not a subscribe');
      expect(() => compileQuery(objects, message.queries[0]!.where)).toThrow(/where must be an object/);
    }
    refusedWith(new Date(0), /^a message is an object with a type$/);
  });
});
