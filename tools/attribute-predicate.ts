/**
 * Predicates over object attributes (object_find, embedding_search) and the total order
 * used to sort by an attribute. A path is a dotted walk into nested objects. Comparisons
 * (lt/lte/gt/gte) hold only between two numbers or two strings; an absent attribute
 * matches nothing but `exists: false`.
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { isJsonObject } from '../storage/json-object.js';
import { patterned } from './identifiers.js';

export const attributePathPattern = /^[A-Za-z0-9_$-]{1,64}(\.[A-Za-z0-9_$-]{1,64}){0,3}$/;
export const predicatesMax = 16;
export const inValuesMax = 100;

export const attributePath = patterned(attributePathPattern, 'attribute path');
export const predicateOps = ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'exists'] as const;
export type PredicateOp = (typeof predicateOps)[number];

export const attributePredicate = z.object({
  path: attributePath,
  op: z.enum(predicateOps),
  value: z.unknown().optional(),
});
export type AttributePredicate = z.infer<typeof attributePredicate>;
export const attributePredicates = z.array(attributePredicate).max(predicatesMax);

export const attributeOrder = z.object({ path: attributePath, desc: z.boolean().optional() });
export type AttributeOrder = z.infer<typeof attributeOrder>;

/** Checks what zod's shape cannot say: the value each op needs. */
export function checkPredicates(predicates: readonly AttributePredicate[]): void {
  for (const [i, p] of predicates.entries()) {
    const where = `where.${i} (${p.path} ${p.op})`;
    switch (p.op) {
      case 'exists':
        if (p.value !== undefined && typeof p.value !== 'boolean') throw invalid(`${where}: value must be a boolean or absent`);
        break;
      case 'in':
        if (!Array.isArray(p.value) || p.value.length > inValuesMax) throw invalid(`${where}: value must be an array of at most ${inValuesMax}`);
        break;
      case 'lt':
      case 'lte':
      case 'gt':
      case 'gte':
        if (typeof p.value !== 'number' && typeof p.value !== 'string') throw invalid(`${where}: value must be a number or a string`);
        break;
      case 'eq':
      case 'ne':
        if (p.value === undefined) throw invalid(`${where}: value is required`);
        break;
    }
  }
}

export function attributeAt(attributes: unknown, path: string): unknown {
  let here: unknown = attributes;
  for (const step of path.split('.')) {
    if (!isJsonObject(here)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(here, step)) return undefined;
    here = here[step];
  }
  return here;
}

export function matchesAll(attributes: unknown, predicates: readonly AttributePredicate[]): boolean {
  return predicates.every((p) => matches(attributeAt(attributes, p.path), p));
}

function matches(value: unknown, p: AttributePredicate): boolean {
  if (p.op === 'exists') return (value !== undefined) === (p.value ?? true);
  if (value === undefined) return false;
  switch (p.op) {
    case 'eq':
      return equalsAny(value, p);
    case 'ne':
      return !equalsAny(value, p);
    case 'in':
      return equalsAny(value, p);
    default: {
      if (typeof value !== typeof p.value) return false;
      const c = compareJson(value, p.value);
      return p.op === 'lt' ? c < 0 : p.op === 'lte' ? c <= 0 : p.op === 'gt' ? c > 0 : c >= 0;
    }
  }
}

/** JSON with object keys sorted: equal values have equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (!isJsonObject(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = v[k];
    return sorted;
  });
}

/**
 * The canonical texts of a predicate's object and array values (eq and ne: its value; in: each
 * of its values), made once per predicate object: a find or search applies the same predicates
 * to every row it examines, and a value may be up to toolArgumentsBytesMax of JSON, so making
 * its text again for each row cost that much per row (seconds per thousand rows).
 */
const canonicalTextsByPredicate = new WeakMap<AttributePredicate, ReadonlySet<string>>();

function canonicalTextsOf(p: AttributePredicate): ReadonlySet<string> {
  let texts = canonicalTextsByPredicate.get(p);
  if (texts === undefined) {
    const values = p.op === 'in' ? (p.value as unknown[]) : [p.value];
    texts = new Set(values.filter((v) => typeof v === 'object' && v !== null).map(canonicalJson));
    canonicalTextsByPredicate.set(p, texts);
  }
  return texts;
}

/** Whether `value` equals the predicate's value (eq, ne) or one of its values (in), as canonical JSON texts. */
function equalsAny(value: unknown, p: AttributePredicate): boolean {
  if (typeof value !== 'object' || value === null) {
    return p.op === 'in' ? (p.value as unknown[]).some((v) => v === value) : value === p.value;
  }
  const texts = canonicalTextsOf(p);
  // No object or array to equal: the row's value need not be serialised at all.
  return texts.size > 0 && texts.has(canonicalJson(value));
}

/** Rank of a JSON type in the sort order; absent (undefined) sorts after everything. */
function rank(v: unknown): number {
  if (v === undefined) return 6;
  if (v === null) return 0;
  switch (typeof v) {
    case 'boolean':
      return 1;
    case 'number':
      return 2;
    case 'string':
      return 3;
    default:
      return Array.isArray(v) ? 4 : 5;
  }
}

/**
 * A total order over JSON values (and absence): by type rank, then by value. Arrays and objects
 * compare by their canonical text, which `textOf` gives (a sort passes a memo of canonicalJson).
 */
export function compareJson(a: unknown, b: unknown, textOf: (value: unknown) => string = canonicalJson): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean') return Number(a) - Number(b);
  if (ra >= 4 && ra <= 5) {
    const ta = textOf(a);
    const tb = textOf(b);
    return ta < tb ? -1 : ta > tb ? 1 : 0;
  }
  return 0;
}

function invalid(message: string): MemoryError {
  return new MemoryError('invalid_argument', message);
}
