/**
 * Order-preserving encoding of key tuples as strings, so one string comparison orders rows
 * by primary key and index entries by (index columns, primary key). Each value starts with
 * a tag (null sorts first); strings escape NUL and end with a two-char terminator, so an
 * encoded prefix of columns is a prefix of the encoded key.
 */
import { MemoryError } from './errors.js';
import type { Value } from './schema.js';

const tagNull = '\u0001';
const tagFalse = '\u0002';
const tagTrue = '\u0003';
const tagNegative = '\u0004';
const tagNonNegative = '\u0005';
const tagString = '\u0006';
/** Negative safe integers are biased into [0, 2^53): exact in a double, so no two collide. */
const negativeBias = 2 ** 53;

export function encodeKey(values: readonly Value[]): string {
  let out = '';
  for (const v of values) out += encodeKeyPart(v);
  return out;
}

function encodeKeyPart(value: Value): string {
  if (value === null) return tagNull;
  if (value === false) return tagFalse;
  if (value === true) return tagTrue;
  if (typeof value === 'number') {
    // Key columns are safe integers: a sign tag, then 14 fixed hex digits (2^53 < 16^14).
    if (!Number.isSafeInteger(value)) throw new MemoryError('invalid_argument', `key value ${value} is not a safe integer`);
    return value < 0
      ? tagNegative + (value + negativeBias).toString(16).padStart(14, '0')
      : tagNonNegative + value.toString(16).padStart(14, '0');
  }
  if (typeof value === 'string') {
    return tagString + value.replaceAll('\u0000', '\u0000\u0001') + '\u0000\u0000';
  }
  throw new MemoryError('invalid_argument', `a key value must be a string, integer, boolean or null`);
}

/** Smallest string greater than every key that starts with `prefix`. */
export function prefixUpperBound(prefix: string): string {
  return prefix + '\uffff';
}
