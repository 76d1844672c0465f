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

/**
 * zod writes ±MAX_SAFE_INTEGER bounds on every .int() and a $schema on every root: noise
 * that costs tools/list bytes (bounded at 32 KB) and tells a model nothing.
 */
function compact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(compact);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === '$schema') continue;
    if ((key === 'minimum' && inner === Number.MIN_SAFE_INTEGER) || (key === 'maximum' && inner === Number.MAX_SAFE_INTEGER)) continue;
    out[key] = compact(inner);
  }
  return out;
}

function jsonSchemaOf(schema: z.ZodObject, io: 'input' | 'output'): JsonSchema {
  const source = (schema as unknown as StandardJsonSchemaSource)['~standard'].jsonSchema;
  if (source === undefined) throw new Error('tool schema does not implement Standard JSON Schema (zod >= 4.2 does)');
  const json = compact(source[io]({ target: 'draft-2020-12' })) as JsonSchema;
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
