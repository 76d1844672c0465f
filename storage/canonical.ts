/**
 * The canonical byte stream of a state: tables by name; for each, msgpack [name, rowCount]
 * then each row's fields (schema column order, values normalised at write time) in
 * encoded-primary-key order. The canonical state hash is SHA-256 of this stream, and the
 * binary snapshot file IS this stream, so loading a snapshot verifies the hash for free.
 */
import { createHash } from 'node:crypto';
import type { BTree } from './btree.js';
import { packr, rowToFields } from './row-codec.js';
import type { Row, TableSchema } from './schema.js';

export interface TableState {
  readonly schema: TableSchema;
  readonly rows: BTree<string, Row>;
}

/** Chunks of the canonical stream, each about `chunkBytes` long. */
export function* canonicalChunks(tables: readonly TableState[], chunkBytes = 1 << 20): Generator<Buffer> {
  const sorted = [...tables].sort((a, b) => (a.schema.name < b.schema.name ? -1 : 1));
  let parts: Buffer[] = [];
  let size = 0;
  const push = (b: Buffer): Buffer | undefined => {
    parts.push(b);
    size += b.length;
    if (size < chunkBytes) return undefined;
    const chunk = Buffer.concat(parts, size);
    parts = [];
    size = 0;
    return chunk;
  };
  for (const t of sorted) {
    let chunk = push(packr.pack([t.schema.name, t.rows.size]));
    if (chunk) yield chunk;
    for (const [, row] of t.rows.entries()) {
      chunk = push(packr.pack(rowToFields(t.schema, row)));
      if (chunk) yield chunk;
    }
  }
  if (size > 0) yield Buffer.concat(parts, size);
}

export function canonicalStateHash(tables: readonly TableState[]): string {
  const hash = createHash('sha256');
  for (const chunk of canonicalChunks(tables)) hash.update(chunk);
  return hash.digest('hex');
}
