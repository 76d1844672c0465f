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

export interface ColumnDef {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable?: boolean;
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
    }
  }
}

/**
 * Checks and normalises one value for its column: -0 -> 0, integers must be safe
 * integers, NaN is refused in every numeric column, JSON is deep-copied (so a caller
 * cannot mutate a stored row) and its size bounded. `where` names the column in errors
 * (`table.column`; the table makes it once per column).
 */
export function normaliseValue(where: string, column: ColumnDef, value: unknown): Value {
  if (value === null || value === undefined) {
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

