/**
 * Zod types whose JSON Schema stays small: tools/list must fit 32 KB, and zod's own
 * `z.int()` spells out the safe-integer bounds (about 50 bytes) at every integer.
 */
import { z } from 'zod';
import { isJsonObject } from '../storage/json-object.js';

/** A safe integer, optionally bounded; its JSON Schema is `{"type":"integer"}` plus the bounds given. */
export function int(min?: number, max?: number): z.ZodNumber {
  let n = z.number();
  if (min !== undefined) n = n.min(min);
  if (max !== undefined) n = n.max(max);
  return n.refine(Number.isSafeInteger, { message: 'expected a safe integer' }).meta({ type: 'integer' });
}

/** A JSON object with any keys (attributes, variables, payloads); its JSON Schema is `{"type":"object"}`. */
export const jsonObject = z
  .unknown()
  .refine(isJsonObject, { message: 'expected a JSON object' })
  .meta({ type: 'object' }) as unknown as z.ZodType<Record<string, unknown>>;
