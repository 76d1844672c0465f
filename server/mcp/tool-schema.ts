/**
 * ToolDef -> the tools/list entry. JSON Schemas come from zod through the Standard JSON
 * Schema interface (`~standard.jsonSchema`, the same path the SDK's McpServer takes),
 * computed once per ToolDef: per-request servers must not pay for it on every request.
 */
import type { Tool } from '@modelcontextprotocol/server';
import type { z } from 'zod';
import type { ToolDef } from '../../tools/tool.js';

type JsonSchema = Record<string, unknown>;

interface StandardJsonSchemaSource {
  readonly '~standard': { readonly jsonSchema?: { input(o: { target: string }): JsonSchema; output(o: { target: string }): JsonSchema } };
}

const entries = new WeakMap<ToolDef, Tool>();

/** Keywords whose value maps names to schemas. */
const schemaMaps = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);

function isEmptyObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 0;
}

function isStringTypeOnly(value: unknown): boolean {
  return typeof value === 'object' && value !== null && Object.keys(value).length === 1 && (value as { type?: unknown }).type === 'string';
}

/**
 * Drop what costs tools/list bytes (bounded at 32 KB, about 8k tokens) and tells a model
 * nothing: a $schema on every root, the ±MAX_SAFE_INTEGER bounds zod writes on every .int(),
 * `propertyNames: {type: string}` (JSON keys are strings), `additionalProperties: {}` (the
 * default). For output schemas also `additionalProperties: false`: outputs are checked
 * against the zod schema on the server, so the client-side copy only has to describe them.
 */
function compact(value: unknown, io: 'input' | 'output'): unknown {
  if (Array.isArray(value)) return value.map((inner) => compact(inner, io));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (schemaMaps.has(key) && typeof inner === 'object' && inner !== null) {
      // Keys here are property names, not keywords: keep every one, compact their schemas.
      out[key] = Object.fromEntries(Object.entries(inner).map(([name, schema]) => [name, compact(schema, io)]));
      continue;
    }
    if (key === '$schema') continue;
    if ((key === 'minimum' && inner === Number.MIN_SAFE_INTEGER) || (key === 'maximum' && inner === Number.MAX_SAFE_INTEGER)) continue;
    if (key === 'propertyNames' && isStringTypeOnly(inner)) continue;
    if (key === 'additionalProperties' && (isEmptyObject(inner) || (io === 'output' && inner === false))) continue;
    out[key] = compact(inner, io);
  }
  return out;
}

function jsonSchemaOf(schema: z.ZodObject, io: 'input' | 'output'): JsonSchema {
  const source = (schema as unknown as StandardJsonSchemaSource)['~standard'].jsonSchema;
  if (source === undefined) throw new Error('tool schema does not implement Standard JSON Schema (zod >= 4.2 does)');
  const json = compact(source[io]({ target: 'draft-2020-12' }), io) as JsonSchema;
  if (json['type'] !== 'object') throw new Error(`tool ${io} schema must be an object schema`);
  return json;
}

export function toolEntryOf(def: ToolDef): Tool {
  let entry = entries.get(def);
  if (entry === undefined) {
    entry = {
      name: def.name,
      title: def.title,
      description: def.description,
      inputSchema: jsonSchemaOf(def.input, 'input') as Tool['inputSchema'],
      outputSchema: jsonSchemaOf(def.output, 'output') as Tool['outputSchema'],
      annotations: { ...def.annotations },
    };
    entries.set(def, entry);
  }
  return entry;
}
