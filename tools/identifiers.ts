/**
 * Names and ids that enter the memory from arguments and leave it in URIs: one strict
 * pattern each, bounded, so no id can smuggle a path, a URI delimiter or a control char.
 */
import { z } from 'zod';

/** Caller-chosen object ids; generated ones (`obj_` + hex) match too. */
export const objectIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
/** Object type names and relation kinds. */
export const typeNamePattern = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** Embedding model names (e.g. `text-embedding-3-small`, `bge/small@1`). */
export const modelNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$/;
/** Ids the store generates (`ctx.newId(prefix)`) for threads, instances, sessions, tokens, tasks; and AR surface ids. */
export const rowIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/**
 * A string matching `pattern`, checked by a refinement rather than a JSON Schema `pattern`
 * (tools/list must stay small); the error message states the pattern.
 */
export function patterned(pattern: RegExp, what: string): z.ZodString {
  return z.string().refine((s) => pattern.test(s), { message: `${what} must match ${pattern.source}` });
}

export const objectId = patterned(objectIdPattern, 'object id');
export const typeName = patterned(typeNamePattern, 'name');
export const modelName = patterned(modelNamePattern, 'model name');
export const rowId = patterned(rowIdPattern, 'id');
