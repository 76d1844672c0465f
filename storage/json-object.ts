/**
 * What counts as a JSON object (a record of named members) when a parsed or decoded value is checked.
 * One copy for every layer, so a request body, a token's claims, a file and a schema are judged alike.
 */

/** A non-null object that is neither an array nor bytes (a Buffer, typed array or DataView is a value, not a record). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}
