/**
 * Idempotency keys live in a system table of every store, written in the same transaction
 * as the call they guard: a retried call with the same key returns the first result and
 * offset and writes nothing, even across restarts.
 */
import type { TableSchema } from './schema.js';

export const idempotencyKeyPattern = /^[A-Za-z0-9._:-]{1,128}$/;
/** Keys remembered per store; the oldest is forgotten past this. */
export const idempotencyKeysMax = 100_000;

export const idempotencyTable: TableSchema = {
  name: 'sys_idempotency',
  columns: [
    { name: 'key', type: 'string' },
    { name: 'reducer', type: 'string' },
    { name: 'offset', type: 'int' },
    { name: 'result', type: 'json', nullable: true },
    { name: 'at_ms', type: 'int' },
  ],
  primaryKey: ['key'],
  indexes: [{ name: 'by_offset', columns: ['offset'] }],
};
