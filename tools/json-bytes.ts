/**
 * The size of a JSON value as a tool returns it: UTF-8 bytes of its JSON text. One measure
 * for the bounds on stored JSON (attributes, variables, payloads, details) and for the bounds
 * on results and pages, so whatever a write accepts, a read can return. (Counting UTF-16
 * characters instead would let '日' weigh a third of what it weighs in a result.)
 */
import { MemoryError } from '../storage/errors.js';

export function jsonBytes(value: unknown): number {
  const text = JSON.stringify(value);
  return text === undefined ? 0 : Buffer.byteLength(text, 'utf8');
}

/** limit_exceeded naming the limit when `value` is more than `bytesMax` bytes of JSON. */
export function boundJsonBytes(what: string, value: unknown, limitName: string, bytesMax: number,
  hint = 'store bulky content elsewhere (e.g. an object) and keep a reference to it here'): void {
  const bytes = jsonBytes(value);
  if (bytes > bytesMax) {
    throw new MemoryError('limit_exceeded', `${what}: ${bytes} bytes of JSON (UTF-8); the limit (${limitName}) is ${bytesMax}`, hint);
  }
}
