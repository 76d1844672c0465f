/**
 * Opaque page cursors: base64url(JSON {p: position, t: issued-at}) + "." + HMAC-SHA256 over
 * (scope, body) with a key drawn once per process. The scope binds a cursor to the tenant,
 * the tool and the query it paged, so a cursor cannot be forged, edited, moved to another
 * query or tenant, or used after cursorTtlMs (or after a restart): each is invalid_argument.
 * Tools only; never inside a reducer (the clock and the key are per process).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import type { JsonValue } from '../storage/schema.js';

export const cursorCharsMax = 2048;
export const cursorTtlMs = 60 * 60 * 1000;
/** Tolerated clock step backwards between issuing and using a cursor. */
const cursorClockSkewMs = 5_000;

const cursorKey = randomBytes(32);

/** A short stable digest of a JSON value: the query a cursor pages (its scope), or a position too long to carry. */
export function jsonFingerprint(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value ?? null)).digest('base64url').slice(0, 22);
}

export function cursorScope(tenant: string, tool: string, query?: unknown): string {
  return `${tenant}\u0000${tool}\u0000${jsonFingerprint(query)}`;
}

export function encodeCursor(scope: string, position: JsonValue): string {
  const body = Buffer.from(JSON.stringify({ p: position, t: Date.now() })).toString('base64url');
  const cursor = `${body}.${mac(scope, body)}`;
  // Positions are kept short by their tools (object_find digests long sort values); this is the backstop.
  if (cursor.length > cursorCharsMax) {
    throw new MemoryError('limit_exceeded', `the next page's cursor would be ${cursor.length} characters; the limit (cursorCharsMax) is ${cursorCharsMax}`,
      'narrow the query (e.g. order by a shorter attribute) and start again without a cursor');
  }
  return cursor;
}

export function decodeCursor(scope: string, cursor: string): JsonValue {
  if (cursor.length > cursorCharsMax) throw invalid('is too long');
  const parts = cursor.split('.');
  if (parts.length !== 2) throw invalid('is malformed');
  const [body, tag] = parts as [string, string];
  const expected = Buffer.from(mac(scope, body));
  const given = Buffer.from(tag);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw invalid('was not issued for this query (forged, edited, or from an earlier server process)');
  }
  const decoded = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { p?: JsonValue; t?: unknown };
  const issuedMs = decoded.t;
  if (typeof issuedMs !== 'number' || decoded.p === undefined) throw invalid('is malformed');
  const ageMs = Date.now() - issuedMs;
  if (ageMs > cursorTtlMs || ageMs < -cursorClockSkewMs) throw invalid('is stale');
  return decoded.p;
}

/** Decode and check the position's shape: a well-signed cursor of another shape is still invalid. */
export function decodeCursorAs<S extends z.ZodType>(scope: string, cursor: string, position: S): z.infer<S> {
  const parsed = position.safeParse(decodeCursor(scope, cursor));
  if (!parsed.success) throw invalid('is malformed');
  return parsed.data;
}

/** `{next_cursor}` continuing after the page's last item when more remain, else `{}`. */
export function nextCursorField<T>(scope: string, page: { items: readonly T[]; more: boolean }, position: (last: T) => JsonValue): { next_cursor?: string } {
  const last = page.items.at(-1);
  return page.more && last !== undefined ? { next_cursor: encodeCursor(scope, position(last)) } : {};
}

function mac(scope: string, body: string): string {
  return createHmac('sha256', cursorKey).update(scope).update('\u0000').update(body).digest('base64url');
}

function invalid(what: string): MemoryError {
  return new MemoryError('invalid_argument', `cursor ${what}`, 'start again without a cursor');
}
