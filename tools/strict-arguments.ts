/**
 * A tool's argument schema made strict all the way down: every object in it refuses a key it
 * does not name, so a misspelt nested field (`order_by.descending`, `where.0.negate`) is an
 * invalid_argument naming the key and its path, not silently dropped, and tools/list says
 * `additionalProperties: false` at every level. Free-form JSON values (attributes, variables,
 * a type's JSON Schema) are `jsonObject`, an unknown rather than an object schema: they stay
 * free-form, as does an object given a catchall on purpose (`z.looseObject`).
 */
import { z } from 'zod';

/** Zod types that wrap one schema in `innerType`; strictness passes through them. */
const wrappers = new Set(['optional', 'nullable', 'default', 'prefault', 'nonoptional', 'readonly', 'catch']);

export function strictArguments<S extends z.ZodType>(schema: S, path = '(arguments)'): S {
  const def = schema._zod.def;
  if (def.type === 'object') {
    const { shape, catchall } = def as z.core.$ZodObjectDef;
    const strictShape = Object.fromEntries(Object.entries(shape).map(([key, inner]) => [key, strictArguments(inner as z.ZodType, `${path}.${key}`)]));
    return copy(schema, { ...def, shape: strictShape, catchall: catchall ?? z.never() });
  }
  if (wrappers.has(def.type)) {
    const { innerType } = def as z.core.$ZodOptionalDef;
    return copy(schema, { ...def, innerType: strictArguments(innerType as z.ZodType, path) });
  }
  if (def.type === 'array') {
    const { element } = def as z.core.$ZodArrayDef;
    return copy(schema, { ...def, element: strictArguments(element as z.ZodType, `${path}.N`) });
  }
  if (def.type === 'union') {
    const { options } = def as z.core.$ZodUnionDef;
    return copy(schema, { ...def, options: options.map((o, i) => strictArguments(o as z.ZodType, `${path}|${i}`)) });
  }
  // A leaf (string, number, enum, unknown, ...). A container this function does not know would
  // keep its objects loose without a word: fail where the tool is defined instead.
  for (const [key, value] of Object.entries(def)) {
    if (key !== 'checks' && isSchemaOrSchemas(value)) {
      throw new Error(`strictArguments: zod type "${def.type}" at ${path} holds schemas (${key}) it does not handle; teach tools/strict-arguments.ts`);
    }
  }
  return schema;
}

function isSchemaOrSchemas(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(isSchemaOrSchemas);
  return typeof value === 'object' && value !== null && '_zod' in value;
}

/** The same zod type over a new definition (its checks kept), with its description and other metadata. */
function copy<S extends z.ZodType>(schema: S, def: object): S {
  const out = schema.clone(def as S['_zod']['def']);
  const meta = z.globalRegistry.get(schema);
  if (meta !== undefined) z.globalRegistry.add(out, meta);
  return out;
}
