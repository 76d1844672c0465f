import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { normaliseJson } from '../../storage/json-normal.js';

/** The definition the walk must agree with: JSON text with sorted keys, parsed back. */
function reference(value: unknown): { ok: unknown } | { error: string } {
  try {
    const text = JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === 'number' && !Number.isFinite(v)) throw new Error('non-finite');
      if (typeof v === 'bigint') throw new Error('bigint');
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        // An own "__proto__" is no data member of a plain object: left out (assigned, it would set the copy's prototype).
        const sorted: Record<string, unknown> = {};
        for (const k of Object.keys(v).sort()) if (k !== '__proto__') sorted[k] = (v as Record<string, unknown>)[k];
        return sorted;
      }
      return Object.is(v, -0) ? 0 : v;
    });
    return text === undefined ? { error: 'undefined' } : { ok: { text, value: JSON.parse(text) } };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const jsonish = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.string(), fc.string({ unit: 'binary' }), fc.double(), fc.integer(), fc.boolean(), fc.constant(null),
    fc.constant(undefined), fc.constant(-0), fc.date({ noInvalidDate: true }), fc.constant(() => 1),
  ),
  node: fc.oneof({ maxDepth: 4 }, tie('leaf'), fc.array(tie('node'), { maxLength: 5 }),
    fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__proto__', '10', '2', 'a"b', '\u0000')), tie('node'), { maxKeys: 5 })),
})).node;

describe('normaliseJson', () => {
  it('equals stringify-with-sorted-keys then parse, and bounds the same text length', () => {
    fc.assert(fc.property(jsonish, fc.integer({ min: 1, max: 400 }), (value, max) => {
      const expected = reference(value);
      let got: { ok: unknown } | { error: string };
      try {
        got = { ok: normaliseJson('t.c', value, max) };
      } catch (e) {
        got = { error: e instanceof MemoryError ? e.code : (e as Error).message };
      }
      if ('error' in expected) {
        // Non-finite numbers and a top-level non-value are refused as invalid arguments.
        expect(got).toHaveProperty('error');
        return;
      }
      const { text, value: parsed } = expected.ok as { text: string; value: unknown };
      if (text.length > max) {
        expect(got).toEqual({ error: 'limit_exceeded' });
      } else {
        expect(got).toHaveProperty('ok');
        const copy = (got as { ok: unknown }).ok;
        expect(copy).toStrictEqual(parsed);
        expect(JSON.stringify(copy)).toBe(text); // same key order, so the same canonical bytes
      }
    }), { numRuns: 2000 });
  });

  it('copies: mutating the input afterwards does not change the normal form', () => {
    const input = { b: [1, { c: 2 }], a: 'x' };
    const copy = normaliseJson('t.c', input, 1000);
    input.b.push(3);
    (input.b[1] as { c: number }).c = 9;
    expect(copy).toStrictEqual({ a: 'x', b: [1, { c: 2 }] });
  });

  it('nesting deeper than the walk gives the same copy; a cycle is refused', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 200; i++) deep = { k: deep, z: [i] };
    expect(normaliseJson('t.c', deep, 1 << 20)).toStrictEqual(JSON.parse(JSON.stringify(deep)));
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    // Refused, never stored (stringify with a sorting replacer recursed until the stack ran out: the same).
    expect(() => normaliseJson('t.c', cyclic, 1 << 20)).toThrow();
  });

  it('an own "__proto__" member is left out at any depth, past the walk too', () => {
    // Its value a function: assigned to a copy, it became the copy's prototype, and the next
    // member (`name`, read-only on a function) threw a TypeError past the walk's depth.
    const member = (value: unknown): Record<string, unknown> => {
      const o: Record<string, unknown> = { name: { a: 1 }, z: 2 };
      Object.defineProperty(o, '__proto__', { value, enumerable: true, writable: true, configurable: true });
      return o;
    };
    for (const value of [() => 1, { length: 3 }, null, 7]) {
      for (const depth of [0, 10, 70, 200]) {
        let deep: unknown = member(value);
        let expected: unknown = { name: { a: 1 }, z: 2 };
        for (let i = 0; i < depth; i++) {
          deep = { k: deep };
          expected = { k: expected };
        }
        expect(normaliseJson('t.c', deep, 1 << 20), `depth ${depth}`).toStrictEqual(expected);
      }
    }
  });

  it('refuses non-finite numbers and BigInt with invalid_argument', () => {
    for (const bad of [{ a: Number.NaN }, [Infinity], { b: 1n }]) {
      expect(() => normaliseJson('t.c', bad, 1000)).toThrow(expect.objectContaining({ code: 'invalid_argument' }) as Error);
    }
  });
});
