/**
 * A subscription's query: one table and a predicate over its columns, checked against the
 * table's schema on the way in. A predicate is a conjunction, per column, of `eq`, `in` and
 * the ranges `lt`, `lte`, `gt`, `gte` (a bare value means `eq`). Compiling yields:
 *  - `matches(row)`, the exact predicate (used for initial rows, resume and live events);
 *  - `equals`, one equality the engine's hub can index (so a transaction touching one row
 *    does not test every subscription of the table);
 *  - `scan`, the narrowest index range that covers every matching row (initial result).
 */
import { MemoryError } from '../../storage/errors.js';
import { isJsonObject } from '../../storage/json-object.js';
import type { KeyRange, ScanOptions } from '../../storage/reducer.js';
import type { ColumnDef, ColumnType, Row, TableSchema, Value } from '../../storage/schema.js';
import { inValuesMax, predicateStringCharsMax, whereColumnsMax } from './limits.js';

export type Scalar = string | number | boolean | null;

export interface ColumnCondition {
  readonly eq?: Scalar;
  readonly in?: readonly Scalar[];
  readonly lt?: Scalar;
  readonly lte?: Scalar;
  readonly gt?: Scalar;
  readonly gte?: Scalar;
}

export interface CompiledQuery {
  readonly table: string;
  readonly schema: TableSchema;
  matches(row: Row): boolean;
  readonly equals?: { readonly column: string; readonly value: Value };
  readonly scan: ScanOptions;
}

const operators = ['eq', 'in', 'lt', 'lte', 'gt', 'gte'] as const;
type Operator = (typeof operators)[number];
const rangeOperators = new Set<Operator>(['lt', 'lte', 'gt', 'gte']);
/** Types a predicate may compare; json, bytes and vector columns have no order or equality here. */
const comparableTypes = new Set<ColumnType>(['string', 'int', 'float', 'bool']);
/** Types whose values the key codec encodes (hub index and index scans need this). */
const keyTypes = new Set<ColumnType>(['string', 'int', 'bool']);

function invalid(message: string): MemoryError {
  return new MemoryError('invalid_argument', message);
}

/** Checks one comparison value against its column; returns it as the row would hold it. */
function checkValue(table: string, column: ColumnDef, op: Operator, value: unknown): Scalar {
  const where = `${table}.${column.name} ${op}`;
  if (value === null) {
    if (rangeOperators.has(op)) throw invalid(`${where}: a range bound cannot be null`);
    if (!column.nullable) throw invalid(`${where}: the column is never null`);
    return null;
  }
  switch (column.type) {
    case 'string':
      if (typeof value !== 'string') throw invalid(`${where}: expected a string`);
      if (value.length > predicateStringCharsMax) throw new MemoryError('limit_exceeded', `${where}: string longer than ${predicateStringCharsMax} characters`);
      return value;
    case 'int':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw invalid(`${where}: expected a safe integer`);
      return value === 0 ? 0 : value;
    case 'float':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(`${where}: expected a finite number`);
      return value === 0 ? 0 : value;
    case 'bool':
      if (typeof value !== 'boolean') throw invalid(`${where}: expected a boolean`);
      if (rangeOperators.has(op)) throw invalid(`${where}: booleans have no range`);
      return value;
    default:
      throw invalid(`${where}: ${column.type} columns cannot be compared`);
  }
}

interface Parsed {
  readonly column: ColumnDef;
  eq?: Scalar;
  in?: Scalar[];
  lower?: { value: Scalar; inclusive: boolean };
  upper?: { value: Scalar; inclusive: boolean };
}

function parseCondition(schema: TableSchema, column: ColumnDef, raw: unknown): Parsed {
  const parsed: Parsed = { column };
  const condition: Record<string, unknown> = isJsonObject(raw) ? raw : { eq: raw };
  const keys = Object.keys(condition);
  if (keys.length === 0) throw invalid(`${schema.name}.${column.name}: empty condition`);
  for (const key of keys) {
    if (!(operators as readonly string[]).includes(key)) {
      throw invalid(`${schema.name}.${column.name}: unknown operator ${JSON.stringify(key).slice(0, 40)} (use ${operators.join(', ')})`);
    }
    const op = key as Operator;
    const value = condition[key];
    if (op === 'in') {
      if (!Array.isArray(value) || value.length === 0) throw invalid(`${schema.name}.${column.name} in: expected a non-empty list`);
      if (value.length > inValuesMax) throw new MemoryError('limit_exceeded', `${schema.name}.${column.name} in: more than ${inValuesMax} values`);
      parsed.in = value.map((v) => checkValue(schema.name, column, op, v));
    } else if (op === 'eq') {
      parsed.eq = checkValue(schema.name, column, op, value);
    } else {
      const checked = checkValue(schema.name, column, op, value);
      if (op === 'gt' || op === 'gte') {
        if (parsed.lower) throw invalid(`${schema.name}.${column.name}: give one of gt, gte`);
        parsed.lower = { value: checked, inclusive: op === 'gte' };
      } else {
        if (parsed.upper) throw invalid(`${schema.name}.${column.name}: give one of lt, lte`);
        parsed.upper = { value: checked, inclusive: op === 'lte' };
      }
    }
  }
  // `in` with one value is an equality (indexable); `eq` with `in` narrows to one value or none.
  if (parsed.in?.length === 1 && parsed.eq === undefined) {
    parsed.eq = parsed.in[0]!;
    delete parsed.in;
  }
  return parsed;
}

function testCondition(c: Parsed, value: Value | undefined): boolean {
  const v = value === undefined ? null : value;
  if (c.eq !== undefined && v !== c.eq) return false;
  if (c.in !== undefined && !c.in.includes(v as Scalar)) return false;
  if (c.lower !== undefined) {
    if (v === null || typeof v !== typeof c.lower.value) return false;
    if (c.lower.inclusive ? !((v as never) >= (c.lower.value as never)) : !((v as never) > (c.lower.value as never))) return false;
  }
  if (c.upper !== undefined) {
    if (v === null || typeof v !== typeof c.upper.value) return false;
    if (c.upper.inclusive ? !((v as never) <= (c.upper.value as never)) : !((v as never) < (c.upper.value as never))) return false;
  }
  return true;
}

export function compileQuery(schema: TableSchema, where: unknown): CompiledQuery {
  if (where !== undefined && !isJsonObject(where)) throw invalid('where must be an object mapping column names to conditions');
  const entries = Object.entries(where ?? {});
  if (entries.length > whereColumnsMax) throw new MemoryError('limit_exceeded', `where constrains more than ${whereColumnsMax} columns`);
  const conditions: Parsed[] = [];
  for (const [name, raw] of entries) {
    const column = schema.columns.find((c) => c.name === name);
    if (!column) throw invalid(`${schema.name} has no column ${JSON.stringify(name).slice(0, 70)}`);
    if (!comparableTypes.has(column.type)) throw invalid(`${schema.name}.${name}: ${column.type} columns cannot be used in where`);
    conditions.push(parseCondition(schema, column, raw));
  }
  const byName = new Map(conditions.map((c) => [c.column.name, c]));
  const matches = (row: Row): boolean => {
    for (const c of conditions) if (!testCondition(c, row[c.column.name])) return false;
    return true;
  };
  const equals = hubEquality(schema, byName);
  return { table: schema.name, schema, matches, ...(equals ? { equals } : {}), scan: scanPlan(schema, byName) };
}

/** The equality the hub indexes: a key-encodable column, primary key columns first (most selective). */
function hubEquality(schema: TableSchema, byName: ReadonlyMap<string, Parsed>): { column: string; value: Value } | undefined {
  const order = [...schema.primaryKey, ...(schema.indexes ?? []).flatMap((i) => i.columns), ...schema.columns.map((c) => c.name)];
  for (const name of order) {
    const c = byName.get(name);
    if (c && c.eq !== undefined && keyTypes.has(c.column.type)) return { column: name, value: c.eq };
  }
  return undefined;
}

/**
 * The index (or primary key) with the longest run of leading equalities, plus a range on the
 * next column when it has one; rows found are still tested with the full predicate.
 */
function scanPlan(schema: TableSchema, byName: ReadonlyMap<string, Parsed>): ScanOptions {
  const candidates: { index?: string; columns: readonly string[] }[] = [
    { columns: schema.primaryKey },
    ...(schema.indexes ?? []).map((i) => ({ index: i.name, columns: i.columns })),
  ];
  let best: ScanOptions = {};
  let bestScore = 0;
  for (const candidate of candidates) {
    const prefix: Value[] = [];
    for (const name of candidate.columns) {
      const c = byName.get(name);
      if (!c || c.eq === undefined || !keyTypes.has(c.column.type)) break;
      prefix.push(c.eq);
    }
    const next = byName.get(candidate.columns[prefix.length] ?? '');
    const ranged = next !== undefined && (next.column.type === 'string' || next.column.type === 'int') && (next.lower || next.upper) ? next : undefined;
    // An equality beats a range; a range beats nothing.
    const score = prefix.length * 2 + (ranged ? 1 : 0);
    if (score <= bestScore) continue;
    bestScore = score;
    const indexPart = candidate.index ? { index: candidate.index } : {};
    if (!ranged) {
      best = { ...indexPart, prefix };
      continue;
    }
    const range: { from?: Value[]; to?: Value[]; toInclusive?: boolean } = {};
    // gt is scanned as gte and filtered: the key codec has no "strictly after a value" bound.
    range.from = ranged.lower ? [...prefix, ranged.lower.value] : prefix.length > 0 ? prefix : undefined;
    if (ranged.upper) {
      // Inclusive even for lt: the predicate drops the equal rows, and the bound never depends
      // on the key codec telling two close integers apart.
      range.to = [...prefix, ranged.upper.value];
      range.toInclusive = true;
    } else if (prefix.length > 0) {
      range.to = prefix;
      range.toInclusive = true;
    }
    if (range.from === undefined) delete range.from;
    best = { ...indexPart, range: range as KeyRange };
  }
  return best;
}
