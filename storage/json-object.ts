/**
 * What counts as a JSON object (a record of named members) when a parsed or decoded value is checked.
 * One copy for every layer, so a request body, a token's claims, a file and a schema are judged alike.
 */

/**
 * A plain object: its prototype Object.prototype (what JSON.parse and msgpack maps give) or null.
 * An array, bytes (a Buffer, typed array, DataView or ArrayBuffer) or any other built-in a msgpack
 * extension decodes to (a Date from a timestamp, a Set, a RegExp, an Error) is a value, not a
 * record: none has own members, and taken as one it read as an empty object (a WebSocket `where`
 * of a msgpack timestamp matched every row of the table).
 */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
