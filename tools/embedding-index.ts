/**
 * The embeddings table's derived index: one VectorIndex per vector length, because one
 * VectorIndex holds vectors of a single length and each embedding model fixes its own.
 * A query searches the index of its own length (models of other lengths cannot match).
 */
import type { Row } from '../storage/schema.js';
import type { DerivedIndex } from '../storage/store.js';
import type { VectorSearch } from './memory.js';
import { VectorIndex } from './vector-index.js';

export class EmbeddingIndex implements DerivedIndex, VectorSearch {
  readonly table = 'embeddings';
  private readonly byLength = new Map<number, VectorIndex>();

  get size(): number {
    let total = 0;
    for (const index of this.byLength.values()) total += index.size;
    return total;
  }

  onInsert(row: Row): void {
    const length = vectorLength(row);
    let index = this.byLength.get(length);
    if (!index) {
      index = new VectorIndex({ table: this.table, idColumn: 'object_id', vectorColumn: 'vector' });
      this.byLength.set(length, index);
    }
    index.onInsert(row);
  }

  onDelete(row: Row): void {
    const length = vectorLength(row);
    const index = this.byLength.get(length);
    if (!index) return;
    index.onDelete(row);
    if (index.size === 0) this.byLength.delete(length);
  }

  clear(): void {
    this.byLength.clear();
  }

  search(query: Float32Array, k: number, filter?: (id: string) => boolean): { id: string; score: number }[] {
    const index = this.byLength.get(query.length);
    return index ? index.search(query, k, filter) : [];
  }
}

function vectorLength(row: Row): number {
  const vector = row['vector'];
  if (!(vector instanceof Float32Array)) throw new Error(`embeddings row ${String(row['object_id'])} has no Float32Array vector`);
  return vector.length;
}
