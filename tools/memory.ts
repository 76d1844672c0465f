/**
 * A tenant's memory as the tools see it: the tenant's store plus the structures derived
 * from it (vector index). Built by `openTenantMemory` (tools helper owns the body).
 */
import type { StoreApi } from '../storage/store.js';

/** Cosine k-nearest search over the embeddings table, kept equal to it by the engine. */
export interface VectorSearch {
  /** Best first; only ids the filter accepts; fewer than k only when fewer match. */
  search(query: Float32Array, k: number, filter?: (id: string) => boolean): { id: string; score: number }[];
  readonly size: number;
}

export interface TenantMemory {
  readonly tenant: string;
  readonly store: StoreApi;
  /** The embeddings' vector index (a derived index of the store). */
  readonly vectors: VectorSearch;
  close(): Promise<void>;
}
