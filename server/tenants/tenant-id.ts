/**
 * What a tenant id may look like. Every path, key and URL built from a tenant id is built
 * only after this check: lowercase ASCII letters, digits and '-', starting with a letter or
 * digit, 2..63 characters. No dots, slashes, percent signs, upper case or unicode, so an id
 * can never climb out of its directory, alias another id by case folding, or need escaping.
 */
import { MemoryError } from '../../storage/errors.js';

export const tenantIdCharsMax = 63;
export const tenantIdPattern = /^[a-z0-9][a-z0-9-]{1,62}$/;

export function isTenantId(value: unknown): value is string {
  // The length check first: the pattern alone would scan attacker-sized strings.
  return typeof value === 'string' && value.length <= tenantIdCharsMax && tenantIdPattern.test(value);
}

/** Returns `value` as a tenant id, or throws `invalid_argument` without echoing the raw value. */
export function parseTenantId(value: unknown): string {
  if (!isTenantId(value)) {
    throw new MemoryError(
      'invalid_argument',
      'invalid tenant id',
      `a tenant id is 2-${tenantIdCharsMax} characters of a-z, 0-9 and '-', starting with a letter or digit`,
    );
  }
  return value;
}
