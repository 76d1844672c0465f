/**
 * Queries of the WebSocket protocol: `where` checked against the table schema, the exact
 * predicate, the equality the hub indexes, and the index range the initial read scans; and
 * rows on the wire (bytes as base64 in JSON, binary in msgpack; vectors as number arrays).
 */
import { describe, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import type { TableSchema } from '../../storage/schema.js';
import { compileQuery } from '../../server/ws/query.js';
import { wireRow } from '../../server/ws/wire-format.js';

const tasks: TableSchema = {
  name: 'tasks',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'owner', type: 'string' },
    { name: 'priority', type: 'int' },
    { name: 'score', type: 'float' },
    { name: 'done', type: 'bool' },
    { name: 'note', type: 'string', nullable: true },
    { name: 'body', type: 'json' },
    { name: 'blob', type: 'bytes', nullable: true },
    { name: 'embedding', type: 'vector', nullable: true },
  ],
  primaryKey: ['id'],
  indexes: [{ name: 'by_owner_priority', columns: ['owner', 'priority'] }],
};

const row = (over: Record<string, unknown>) => ({ id: 't1', owner: 'ann', priority: 3, score: 0.5, done: false, note: null, body: {}, blob: null, embedding: null, ...over });

function refused(where: unknown, code: string, text: RegExp): void {
  let error: unknown;
  try {
    compileQuery(tasks, where);
  } catch (e) {
    error = e;
  }
  expect(error, JSON.stringify(where)).toBeInstanceOf(MemoryError);
  expect((error as MemoryError).code).toBe(code);
  expect((error as MemoryError).message).toMatch(text);
}

describe('compileQuery', () => {
  test('conditions are a conjunction of eq, in and ranges, per column', () => {
    const q = compileQuery(tasks, { owner: 'ann', priority: { gte: 2, lt: 5 }, done: { in: [false] }, score: { gt: 0.25 } });
    expect(q.matches(row({}))).toBe(true);
    expect(q.matches(row({ owner: 'bob' }))).toBe(false);
    expect(q.matches(row({ priority: 5 }))).toBe(false);
    expect(q.matches(row({ priority: 2 }))).toBe(true);
    expect(q.matches(row({ done: true }))).toBe(false);
    expect(q.matches(row({ score: 0.25 }))).toBe(false);
    expect(compileQuery(tasks, { note: null }).matches(row({}))).toBe(true);
    expect(compileQuery(tasks, { note: { in: ['a', null] } }).matches(row({ note: 'b' }))).toBe(false);
    expect(compileQuery(tasks, undefined).matches(row({}))).toBe(true);
  });

  test('the hub indexes a key equality first, and the scan uses the longest equality prefix plus a range', () => {
    expect(compileQuery(tasks, { owner: 'ann', id: 't1' }).equals).toEqual({ column: 'id', value: 't1' });
    expect(compileQuery(tasks, { owner: 'ann', priority: 3 }).equals).toEqual({ column: 'owner', value: 'ann' });
    expect(compileQuery(tasks, { score: 1.5 }).equals).toBeUndefined(); // floats are not key-encodable
    expect(compileQuery(tasks, { owner: { in: ['a', 'b'] } }).equals).toBeUndefined();
    expect(compileQuery(tasks, { id: 't1' }).scan).toEqual({ prefix: ['t1'] });
    expect(compileQuery(tasks, { owner: 'ann', priority: 3 }).scan).toEqual({ index: 'by_owner_priority', prefix: ['ann', 3] });
    expect(compileQuery(tasks, { owner: 'ann', priority: { gt: 1, lte: 4 } }).scan).toEqual({
      index: 'by_owner_priority', range: { from: ['ann', 1], to: ['ann', 4], toInclusive: true },
    });
    expect(compileQuery(tasks, { owner: 'ann', priority: { gte: 2 } }).scan).toEqual({
      index: 'by_owner_priority', range: { from: ['ann', 2], to: ['ann'], toInclusive: true },
    });
    // lt scans up to and including the bound; the predicate drops the equal rows.
    expect(compileQuery(tasks, { owner: 'ann', priority: { lt: 4 } }).scan).toEqual({
      index: 'by_owner_priority', range: { from: ['ann'], to: ['ann', 4], toInclusive: true },
    });
    expect(compileQuery(tasks, { done: true }).scan).toEqual({});
  });

  test('columns, types and operators are checked against the schema', () => {
    refused({ colour: 'red' }, 'invalid_argument', /no column/);
    refused({ priority: 1.5 }, 'invalid_argument', /safe integer/);
    refused({ priority: { lt: null } }, 'invalid_argument', /cannot be null/);
    refused({ owner: null }, 'invalid_argument', /never null/);
    refused({ done: { lt: true } }, 'invalid_argument', /no range/);
    refused({ body: { eq: 1 } }, 'invalid_argument', /json columns/);
    refused({ blob: null }, 'invalid_argument', /bytes columns/);
    refused({ owner: { like: 'a%' } }, 'invalid_argument', /unknown operator/);
    refused({ owner: { in: [] } }, 'invalid_argument', /non-empty/);
    refused({ owner: { in: Array.from({ length: 1001 }, (_, i) => `o${i}`) } }, 'limit_exceeded', /1000/);
    refused({ priority: { gt: 1, gte: 2 } }, 'invalid_argument', /one of gt, gte/);
    refused(['owner'], 'invalid_argument', /object/);
  });

  test('a typed array (msgpack ext 0x74 decodes to one) is no where: refused, never read as "no condition"', () => {
    // An empty Int16Array has no keys: taken as an object, it matched every row of the table.
    refused(new Int16Array(0), 'invalid_argument', /where must be an object/);
    refused(new Float32Array([1, 2]), 'invalid_argument', /where must be an object/);
    refused(new DataView(new ArrayBuffer(4)), 'invalid_argument', /where must be an object/);
  });

  test('what other msgpack extensions decode to (a timestamp\'s Date, a Set, a RegExp, an Error, an ArrayBuffer) is no where either', () => {
    // None has own keys: taken as an object, each matched every row of the table.
    for (const where of [new Date(0), new Set(['owner']), /ann/, new Error('ann'), new ArrayBuffer(0)]) {
      refused(where, 'invalid_argument', /where must be an object/);
    }
    // Nor a condition: the value stays an equality, refused by its column's type.
    refused({ owner: new Date(0) }, 'invalid_argument', /expected a string/);
  });
});

describe('wireRow', () => {
  test('bytes are base64 in JSON and binary in msgpack; vectors are arrays of numbers', () => {
    const stored = row({ blob: new Uint8Array([0, 255, 16]), embedding: new Float32Array([0.5, -2]) });
    expect(wireRow(tasks, stored, 'json')).toMatchObject({ blob: 'AP8Q', embedding: [0.5, -2] });
    const packed = wireRow(tasks, stored, 'msgpack');
    expect(packed['blob']).toEqual(new Uint8Array([0, 255, 16]));
    expect(packed['embedding']).toEqual([0.5, -2]);
    // Converted once per stored row, however many subscribers it goes to.
    expect(wireRow(tasks, stored, 'json')).toBe(wireRow(tasks, stored, 'json'));
  });
});
