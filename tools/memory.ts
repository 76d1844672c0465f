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

/** One day's runs of one (kind, definition, outcome), aggregated by the control plane's SQL. */
export interface RunHistoryAggregate {
  readonly day: string; // YYYY-MM-DD (UTC) of the run's start
  readonly kind: 'bpmn' | 'session';
  readonly definition: string;
  readonly outcome: string;
  readonly count: number;
  readonly durationMsAvg: number;
  readonly durationMsP50: number;
  readonly durationMsMax: number;
}

/**
 * The tenant's run history in the control plane, already bound to this tenant by the server
 * (the tools cannot name another). Absent when no control plane serves this process.
 */
export interface RunHistoryReader {
  aggregates(fromMs: number, toMs: number): Promise<RunHistoryAggregate[]>;
}

export interface TenantMemory {
  readonly tenant: string;
  readonly store: StoreApi;
  /** The embeddings' vector index (a derived index of the store). */
  readonly vectors: VectorSearch;
  readonly runHistory?: RunHistoryReader;
  close(): Promise<void>;
}
