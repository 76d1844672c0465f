/**
 * The normal form of a `json` column value: a deep copy (a caller cannot mutate a stored
 * row) with object keys sorted (equal states hash equally whatever the insertion order),
 * -0 as 0, and exactly what `JSON.stringify` would keep (toJSON applied; undefined,
 * functions and symbols dropped from objects and null in arrays). Its JSON text is bounded.
 *
 * One walk that copies and counts the text length as it goes: the stringify-then-parse
 * form cost about a tenth of a commit's CPU. Past `walkDepthMax` (or on a cycle) the
 * value goes through stringify + parse instead, which keeps the same result and errors.
 */
import { MemoryError } from './errors.js';
import type { JsonValue } from './schema.js';

/** Nesting handled by the walk; deeper values take the stringify path (same result). */
const walkDepthMax = 64;

/** Characters JSON.stringify escapes in a string (quote, backslash, controls, lone surrogates). */
const escapedChar = /["\\\u0000-\u001f\ud800-\udfff]/;

class TooDeep extends Error {}

export function normaliseJson(where: string, value: unknown, textCharsMax: number): JsonValue {
  let copy: JsonValue | undefined;
  try {
    const walk = new JsonWalk(where, textCharsMax);
    copy = walk.value(value, '', 0);
  } catch (error) {
    if (!(error instanceof TooDeep)) throw error;
    copy = viaText(where, value, textCharsMax);
  }
  if (copy === undefined) throw typeError(where, 'a JSON value', value);
  return copy;
}

class JsonWalk {
  private textChars = 0;

  constructor(private readonly where: string, private readonly textCharsMax: number) {}

  /** The normal copy of `v`, or undefined where JSON.stringify would leave it out. `key`: an array index is made a string only for toJSON. */
  value(raw: unknown, key: string | number, depth: number): JsonValue | undefined {
    let v = raw;
    if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      v = (v as { toJSON(key: string): unknown }).toJSON(String(key));
    }
    switch (typeof v) {
      case 'string':
        this.count(stringChars(v));
        return v;
      case 'number':
        if (!Number.isFinite(v)) throw typeError(this.where, 'finite JSON numbers', v);
        this.count(numberChars(v));
        return v === 0 ? 0 : v;
      case 'boolean':
        this.count(v ? 4 : 5);
        return v;
      case 'bigint':
        throw typeError(this.where, 'JSON without BigInt', v);
      case 'object':
        if (v === null) {
          this.count(4);
          return null;
        }
        if (depth >= walkDepthMax) throw new TooDeep();
        return Array.isArray(v) ? this.array(v, depth) : this.object(v as Record<string, unknown>, depth);
      default:
        return undefined; // undefined, function, symbol
    }
  }

  private array(v: readonly unknown[], depth: number): JsonValue[] {
    this.count(2 + Math.max(0, v.length - 1));
    const out: JsonValue[] = new Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const item = this.value(v[i], i, depth + 1);
      if (item === undefined) this.count(4);
      out[i] = item === undefined ? null : item;
    }
    return out;
  }

  private object(v: Record<string, unknown>, depth: number): { [key: string]: JsonValue } {
    const out: { [key: string]: JsonValue } = {};
    let members = 0;
    for (const k of sortedInPlace(Object.keys(v))) {
      // An own "__proto__" key cannot be set as data on a plain object: stringify-with-sorting dropped it too.
      if (k === '__proto__') continue;
      const item = this.value(v[k], k, depth + 1);
      if (item === undefined) continue;
      this.count(stringChars(k) + 1 + (members > 0 ? 1 : 0));
      out[k] = item;
      members++;
    }
    this.count(2);
    return out;
  }

  private count(chars: number): void {
    this.textChars += chars;
    if (this.textChars > this.textCharsMax) {
      throw new MemoryError('limit_exceeded', `${this.where} JSON longer than ${this.textCharsMax} characters`);
    }
  }
}

/** Up to this many keys are sorted by insertion (no allocation; most objects are small), past it by Array.sort. */
const insertionSortKeysMax = 16;

/** The keys in the order Array.prototype.sort gives strings (UTF-16 code units), sorted in place. */
function sortedInPlace(keys: string[]): string[] {
  if (keys.length > insertionSortKeysMax) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
  return keys;
}

/** Length of the number as JSON text: safe integers counted digit by digit (no string made), others as String() writes them. */
function numberChars(n: number): number {
  if (!Number.isSafeInteger(n) || Object.is(n, -0)) return String(n).length;
  let chars = n < 0 ? 2 : 1;
  for (let rest = Math.abs(n); rest >= 10; rest = Math.floor(rest / 10)) chars++;
  return chars;
}

/** Length of the string as JSON text, quotes included. */
function stringChars(s: string): number {
  return escapedChar.test(s) ? JSON.stringify(s).length : s.length + 2;
}

/** The reference form: stringify with sorted keys, then parse. Used past the walk's depth. */
function viaText(where: string, value: unknown, textCharsMax: number): JsonValue | undefined {
  const text = JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'number' && !Number.isFinite(v)) throw typeError(where, 'finite JSON numbers', v);
    if (typeof v === 'bigint') throw typeError(where, 'JSON without BigInt', v);
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      // Left out as the walk leaves it: assigned, an own "__proto__" would set the copy's prototype.
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) if (k !== '__proto__') sorted[k] = (v as Record<string, unknown>)[k];
      return sorted;
    }
    return Object.is(v, -0) ? 0 : v;
  });
  if (text === undefined) return undefined;
  if (text.length > textCharsMax) throw new MemoryError('limit_exceeded', `${where} JSON longer than ${textCharsMax} characters`);
  return JSON.parse(text) as JsonValue;
}

export function typeError(where: string, expected: string, value: unknown): MemoryError {
  const got = value instanceof Uint8Array ? 'bytes' : Array.isArray(value) ? 'array' : typeof value;
  return new MemoryError('invalid_argument', `${where} must be ${expected} (got ${got})`);
}
