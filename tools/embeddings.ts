/**
 * Embeddings: one vector per object, under a named model whose first vector fixes its
 * dimensions. Similarity search (cosine) runs on the derived vector index and filters by
 * the object's type and attributes inside the same read view, so index and table agree.
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { defineReducer } from '../storage/reducer.js';
import { vectorDimensionsMax, type TableSchema } from '../storage/schema.js';
import { attributePredicates, checkPredicates, matchesAll } from './attribute-predicate.js';
import { deleteEmbedding, dropModelIfUnused } from './embedding-rows.js';
import { readTool, writeTool } from './define-tool.js';
import { modelName, objectId, typeName } from './identifiers.js';
import { requireObject } from './objects.js';
import type { ToolDef } from './tool.js';
import { int } from './wire-schema.js';

export const embeddingModelsMax = 64;
export const searchResultsMax = 100;
export const searchResultsDefault = 10;

export const embeddingsTable: TableSchema = {
  name: 'embeddings',
  columns: [
    { name: 'object_id', type: 'string' },
    { name: 'model', type: 'string' },
    { name: 'dims', type: 'int' },
    { name: 'vector', type: 'vector' },
    { name: 'updated_at_ms', type: 'int' },
  ],
  primaryKey: ['object_id'],
  indexes: [{ name: 'embeddings_by_model', columns: ['model'] }],
};

export const embeddingModelsTable: TableSchema = {
  name: 'embedding_models',
  columns: [
    { name: 'model', type: 'string' },
    { name: 'dims', type: 'int' },
    { name: 'created_at_ms', type: 'int' },
  ],
  primaryKey: ['model'],
};

const vector = z.array(z.number()).min(1).max(vectorDimensionsMax);

function checkVector(values: readonly number[]): Float32Array {
  const v = Float32Array.from(values);
  let sumSquares = 0;
  for (const x of v) {
    if (!Number.isFinite(x)) throw new MemoryError('invalid_argument', 'vector components must be finite (and within float32 range)');
    sumSquares += x * x;
  }
  if (sumSquares === 0) throw new MemoryError('invalid_argument', 'vector is all zeros: cosine similarity is undefined');
  return v;
}

const putArgs = z.object({ object_id: objectId, model: modelName, vector });
const putResult = z.object({ dims: int() });

export const embeddingPut = defineReducer({
  name: 'embedding_put',
  args: putArgs,
  run(ctx, a): z.infer<typeof putResult> {
    requireObject(ctx, a.object_id);
    const v = checkVector(a.vector);
    const models = ctx.table('embedding_models');
    const model = models.get([a.model]);
    if (model) {
      const dims = model['dims'] as number;
      if (dims !== v.length) {
        throw new MemoryError('invalid_argument', `model ${a.model} has ${dims} dimensions; this vector has ${v.length}`);
      }
    } else {
      if (models.size >= embeddingModelsMax) {
        throw new MemoryError('limit_exceeded', `model ${a.model} would be a new embedding model; the tenant has ${models.size}, the limit (embeddingModelsMax) is ${embeddingModelsMax}`,
          'put the vector under a model in use, or delete the embeddings of a model no longer used (a model goes with its last embedding)');
      }
      models.insert({ model: a.model, dims: v.length, created_at_ms: ctx.timestampMs });
    }
    const embeddings = ctx.table('embeddings');
    const movedFrom = embeddings.get([a.object_id])?.['model'] as string | undefined;
    embeddings.upsert({ object_id: a.object_id, model: a.model, dims: v.length, vector: v, updated_at_ms: ctx.timestampMs });
    if (movedFrom !== undefined && movedFrom !== a.model) dropModelIfUnused(ctx, movedFrom);
    return { dims: v.length };
  },
});

const deleteArgs = z.object({ object_id: objectId });
const deleteResult = z.object({});

export const embeddingDelete = defineReducer({
  name: 'embedding_delete',
  args: deleteArgs,
  run(ctx, a): z.infer<typeof deleteResult> {
    if (!deleteEmbedding(ctx, a.object_id)) {
      throw new MemoryError('not_found', `object ${a.object_id} has no embedding`);
    }
    return {};
  },
});

const searchInput = z.object({
  vector,
  k: int(1, searchResultsMax).optional(),
  model: modelName.optional(),
  type: typeName.optional(),
  where: attributePredicates.optional(),
});

const embeddingSearch = readTool({
  name: 'embedding_search',
  title: 'Similarity search',
  description: `The k objects (default ${searchResultsDefault}, at most ${searchResultsMax}) whose embeddings are most cosine-similar to vector, best first, optionally only of a model, a type, and matching attribute predicates.`,
  input: searchInput,
  output: z.object({ results: z.array(z.object({ id: z.string(), score: z.number(), type: z.string() })) }),
  run: ({ memory }, a) => memory.store.read((view) => {
    const where = a.where ?? [];
    checkPredicates(where);
    const query = checkVector(a.vector);
    const models = view.table('embedding_models');
    if (a.model !== undefined) {
      const model = models.get([a.model]);
      if (!model) throw new MemoryError('not_found', `no embeddings under model ${a.model}`);
      if (model['dims'] !== query.length) {
        throw new MemoryError('invalid_argument', `model ${a.model} has ${String(model['dims'])} dimensions; the query has ${query.length}`);
      }
    } else if (models.size > 0 && ![...models.scan()].some((m) => m['dims'] === query.length)) {
      const known = [...models.scan()].map((m) => `${String(m['model'])}:${String(m['dims'])}`).join(', ');
      throw new MemoryError('invalid_argument', `no model has ${query.length} dimensions (models: ${known})`);
    }
    const embeddings = view.table('embeddings');
    const objects = view.table('objects');
    const accept = (id: string): boolean => {
      if (a.model !== undefined && embeddings.get([id])?.['model'] !== a.model) return false;
      if (a.type === undefined && where.length === 0) return true;
      const object = objects.get([id]);
      if (!object || (a.type !== undefined && object['type'] !== a.type)) return false;
      return matchesAll(object['attributes'], where);
    };
    const hits = memory.vectors.search(query, a.k ?? searchResultsDefault, accept);
    return {
      results: hits.map((h) => ({ id: h.id, score: h.score, type: (objects.get([h.id])?.['type'] as string | undefined) ?? '' })),
    };
  }),
});

export const embeddingTools: ToolDef[] = [
  writeTool({
    reducer: embeddingPut, args: putArgs, result: putResult, title: 'Put embedding', idempotent: true,
    description: 'Set an object\'s embedding vector under a model; a model\'s first vector fixes its dimensions while it has any.',
  }),
  writeTool({
    reducer: embeddingDelete, args: deleteArgs, result: deleteResult, title: 'Delete embedding', destructive: true, idempotent: true,
    description: 'Remove an object\'s embedding.',
  }),
  embeddingSearch,
];

export const embeddingReducers = [embeddingPut, embeddingDelete];
export const embeddingTables = [embeddingsTable, embeddingModelsTable];
