/**
 * Declared table schemas. A row is a plain object whose fields follow the column order;
 * values are normalised at write time (see `normaliseValue`) so that the canonical
 * state hash is a function of the logical state only.
 */
import { MemoryError } from './errors.js';
import { normaliseJson, typeError } from './json-normal.js';

export type ColumnType = 'string' | 'int' | 'float' | 'bool' | 'json' | 'bytes' | 'vector';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type Value = string | number | boolean | null | Uint8Array | Float32Array | JsonValue;
export type Row = Readonly<Record<string, Value>>;

/** What an added-later column holds in rows written before it existed: null (a nullable column) or a scalar. */
export type ColumnDefault = string | number | boolean | null;

export interface ColumnDef {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable?: boolean;
  /**
   * Declared by a release after stores of the table were written (with `default`): rows written
   * before it hold `default`. Added-later columns come last, after every column the table had at
   * first, in the order they were added; none is in the primary key or an index. A row whose
   * trailing added-later columns hold their defaults is encoded without them (row-codec.ts), so
   * old rows, frames, snapshots and backups read as rows holding the default and the state hash
   * of a store does not change with the upgrade. Never take the mark off again.
   */
  readonly addedLater?: true;
  /** The added-later column's value in rows written before it (and when a put leaves it out). */
  readonly default?: ColumnDefault;
}

export interface IndexDef {
  readonly name: string;
  readonly columns: readonly string[];
  readonly unique?: boolean;
}

export interface TableSchema {
  readonly name: string;
  readonly columns: readonly ColumnDef[];
  /** Columns of the primary key, in key order. Key columns are string, int or bool. */
  readonly primaryKey: readonly string[];
  readonly indexes?: readonly IndexDef[];
  /** Past this many rows an insert fails with limit_exceeded. */
  readonly rowsMax?: number;
}

/** Bounds on every value that enters a row. */
export const stringBytesMax = 1024 * 1024;
export const jsonBytesMax = 1024 * 1024;
export const vectorDimensionsMax = 4096;
export const tableNamePattern = /^[a-z][a-z0-9_]{0,62}$/;
export const rowsMaxDefault = 10_000_000;

export function assertSchema(schema: TableSchema): void {
  if (!tableNamePattern.test(schema.name)) throw new Error(`bad table name ${schema.name}`);
  const names = new Set(schema.columns.map((c) => c.name));
  if (names.size !== schema.columns.length) throw new Error(`${schema.name}: duplicate column`);
  if (schema.primaryKey.length === 0) throw new Error(`${schema.name}: empty primary key`);
  for (const k of schema.primaryKey) {
    const col = schema.columns.find((c) => c.name === k);
    if (!col) throw new Error(`${schema.name}: key column ${k} not declared`);
    if (col.nullable) throw new Error(`${schema.name}: key column ${k} is nullable`);
    if (col.type !== 'string' && col.type !== 'int' && col.type !== 'bool') {
      throw new Error(`${schema.name}: key column ${k} has type ${col.type}`);
    }
  }
  for (const index of schema.indexes ?? []) {
    for (const c of index.columns) {
      const col = schema.columns.find((x) => x.name === c);
      if (!col) throw new Error(`${schema.name}.${index.name}: column ${c} not declared`);
      if (col.type === 'json' || col.type === 'bytes' || col.type === 'vector') {
        throw new Error(`${schema.name}.${index.name}: cannot index ${col.type} column ${c}`);
      }
      // Old rows are read without the column (their bytes end before it): an index read from them
      // would need the default spliced into every key walk, and a unique one would refuse every
      // store holding two old rows. A release that needs one adds a new table instead.
      if (col.addedLater) throw new Error(`${schema.name}.${index.name}: cannot index column ${c}, added later (old rows would all hold its default)`);
    }
  }
  assertAddedColumns(schema);
}

/**
 * Added-later columns: each with a default valid for its type, all after the first columns,
 * none in the primary key (checked with the indexes above and the key here).
 */
function assertAddedColumns(schema: TableSchema): void {
  let added = 0;
  for (const col of schema.columns) {
    const where = `${schema.name}.${col.name}`;
    if (!col.addedLater) {
      if (added > 0) throw new Error(`${where}: declared after the added-later column(s) ${schema.columns.filter((c) => c.addedLater).map((c) => c.name).join(', ')}; a column added later comes last (old rows end before it), so declare ${col.name} before them or mark it addedLater`);
      if (col.default !== undefined) throw new Error(`${where}: a default is only for a column added later (addedLater: true)`);
      continue;
    }
    added++;
    if (schema.primaryKey.includes(col.name)) throw new Error(`${where}: a key column cannot be added later (old rows are keyed without it)`);
    if (col.default === undefined) throw new Error(`${where}: a column added later needs a default (the value of rows written before it)`);
    const normal = normaliseValue(where, col, col.default);
    if (!Object.is(normal, col.default)) throw new Error(`${where}: default ${String(col.default)} is not in normal form (normalised: ${String(normal)})`);
  }
}

/** Fields a row of `schema` may be encoded with: every column but its trailing added-later ones (row-codec.ts trims those at their defaults). */
export function fieldsMin(schema: TableSchema): number {
  let n = schema.columns.length;
  while (n > 0 && schema.columns[n - 1]!.addedLater) n--;
  return n;
}

/**
 * Checks and normalises one value for its column: -0 -> 0, integers must be safe
 * integers, NaN is refused in every numeric column, JSON is deep-copied (so a caller
 * cannot mutate a stored row) and its size bounded. `where` names the column in errors
 * (`table.column`; the table makes it once per column).
 */
export function normaliseValue(where: string, column: ColumnDef, value: unknown): Value {
  if (value === null || value === undefined) {
    // A put that leaves an added-later column out (code written before it) stores its default.
    if (value === undefined && column.addedLater) return column.default!;
    if (column.nullable) return null;
    throw new MemoryError('invalid_argument', `${where} is required`);
  }
  switch (column.type) {
    case 'string':
      if (typeof value !== 'string') throw typeError(where, 'a string', value);
      if (value.length > stringBytesMax) throw new MemoryError('limit_exceeded', `${where} longer than ${stringBytesMax}`);
      return value;
    case 'int': {
      const n = typeof value === 'bigint' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw typeError(where, 'a safe integer', value);
      return n === 0 ? 0 : n;
    }
    case 'float':
      if (typeof value !== 'number' || Number.isNaN(value) || !Number.isFinite(value)) {
        throw typeError(where, 'a finite number', value);
      }
      return value === 0 ? 0 : value;
    case 'bool':
      if (typeof value !== 'boolean') throw typeError(where, 'a boolean', value);
      return value;
    case 'bytes':
      if (!(value instanceof Uint8Array)) throw typeError(where, 'bytes', value);
      return new Uint8Array(value);
    case 'vector': {
      const arr = value instanceof Float32Array ? value : Array.isArray(value) ? Float32Array.from(value as number[]) : null;
      if (!arr) throw typeError(where, 'a vector', value);
      if (arr.length === 0 || arr.length > vectorDimensionsMax) {
        throw new MemoryError('limit_exceeded', `${where} has ${arr.length} dimensions (1..${vectorDimensionsMax})`);
      }
      const copy = new Float32Array(arr);
      for (let i = 0; i < copy.length; i++) {
        const x = copy[i]!;
        if (!Number.isFinite(x)) throw typeError(where, 'finite vector components', value);
        if (x === 0) copy[i] = 0;
      }
      return copy;
    }
    case 'json':
      return normaliseJson(where, value, jsonBytesMax);
  }
}

