/**
 * An embedding model lives as long as some embedding uses it. Its first vector fixes its
 * dimensions, so a model name once put with the wrong length (a test vector, a mistaken
 * model) would otherwise keep that length, and its place under embeddingModelsMax, for good:
 * once its last embedding goes (deleted, moved to another model, or its object deleted), the
 * model goes in the same transaction, and the next vector under its name fixes it anew.
 */
import type { ReducerContext } from '../storage/reducer.js';

/** Deletes `objectId`'s embedding (false when it has none), and its model once no embedding uses that. */
export function deleteEmbedding(ctx: ReducerContext, objectId: string): boolean {
  const embeddings = ctx.table('embeddings');
  const row = embeddings.get([objectId]);
  if (row === undefined) return false;
  embeddings.delete([objectId]);
  dropModelIfUnused(ctx, row['model'] as string);
  return true;
}

/** Deletes `model` when no embedding uses it. */
export function dropModelIfUnused(ctx: ReducerContext, model: string): void {
  for (const _used of ctx.table('embeddings').scan({ index: 'embeddings_by_model', prefix: [model], limit: 1 })) return;
  ctx.table('embedding_models').delete([model]);
}
