/**
 * One page of a list result, bounded twice: by item count (pageSizeDefault / pageSizeMax)
 * and by bytes, so a page of large rows still fits resultBytesMax with room for its envelope.
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { jsonBytes } from './json-bytes.js';
import { pageSizeDefault, pageSizeMax, resultBytesMax } from './tool.js';
import { int } from './wire-schema.js';

/** Bytes of a page's items: the result bound less room for the envelope (cursor, ids, flags). */
export const pageItemsBytesMax = resultBytesMax - 16 * 1024;

export const pageLimit = int(1, pageSizeMax).optional();
export const pageCursor = z.string().max(2048).optional();

export interface CollectedPage<T> {
  readonly items: T[];
  /** True when items were left after this page. */
  readonly more: boolean;
}

/**
 * Take items from `source` until `limit` items or pageItemsBytesMax bytes. An item that
 * alone exceeds the byte budget is limit_exceeded (never silently dropped).
 */
export function collectPage<T>(source: Iterable<T>, limit: number | undefined, bytesMax = pageItemsBytesMax): CollectedPage<T> {
  const count = limit ?? pageSizeDefault;
  const items: T[] = [];
  let bytes = 0;
  for (const item of source) {
    if (items.length === count) return { items, more: true };
    const itemBytes = jsonBytes(item) + 1;
    if (bytes + itemBytes > bytesMax) {
      if (items.length === 0) throw new MemoryError('limit_exceeded', `one item exceeds the ${bytesMax}-byte page bound`);
      return { items, more: true };
    }
    bytes += itemBytes;
    items.push(item);
  }
  return { items, more: false };
}
