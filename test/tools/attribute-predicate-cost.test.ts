/**
 * An eq / ne / in predicate whose value is a large object or array costs its serialisation once
 * per call, not once per row examined: object_find applies the same predicates to up to
 * findScanRowsMax rows, and a value may be up to toolArgumentsBytesMax of JSON (a 0.5 MB value
 * over 2,000 objects held the process for 24 s; over a full page scan it was many minutes).
 */
import { expect, test } from 'vitest';
import { attributePredicates, matchesAll, type AttributePredicate } from '../../tools/attribute-predicate.js';

/** A JSON value that counts how often it is serialised (JSON.stringify calls toJSON). */
function countingValue(): { value: unknown; serialised: () => number } {
  let count = 0;
  return { value: { big: { toJSON: () => (count++, [1, 2, 3]) } }, serialised: () => count };
}

test.each(['eq', 'ne', 'in'] as const)('%s: an object value is serialised once, not once per row', (op) => {
  const counting = countingValue();
  const predicate: AttributePredicate = { path: 'x', op, value: op === 'in' ? [counting.value, 7] : counting.value };
  const rows = Array.from({ length: 500 }, (_, i) => ({ x: { i } }));
  const matched = rows.filter((attributes) => matchesAll(attributes, [predicate])).length;
  expect(matched).toBe(op === 'ne' ? 500 : 0);
  expect(counting.serialised()).toBe(1);
});

test('equal objects and arrays still match whatever their key order; primitives as before', () => {
  const where = attributePredicates.parse([{ path: 'x', op: 'eq', value: { b: [1, { d: 2, c: 1 }], a: null } }]);
  expect(matchesAll({ x: { a: null, b: [1, { c: 1, d: 2 }] } }, where)).toBe(true);
  expect(matchesAll({ x: { a: null, b: [{ c: 1, d: 2 }, 1] } }, where)).toBe(false);
  expect(matchesAll({ x: 'x' }, where)).toBe(false);
  const inList = attributePredicates.parse([{ path: 'x', op: 'in', value: [0, 'a', null, [1], { k: true }] }]);
  for (const x of [0, -0, 'a', null, [1], { k: true }]) expect(matchesAll({ x }, inList)).toBe(true);
  for (const x of ['0', 1, false, [], {}, [1, 1], { k: false }]) expect(matchesAll({ x }, inList)).toBe(false);
  expect(matchesAll({}, inList)).toBe(false);
  const ne = attributePredicates.parse([{ path: 'x', op: 'ne', value: [1, 2] }]);
  expect(matchesAll({ x: [1, 2] }, ne)).toBe(false);
  expect(matchesAll({ x: [2, 1] }, ne)).toBe(true);
  expect(matchesAll({ x: 3 }, ne)).toBe(true);
});
