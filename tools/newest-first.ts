/**
 * A page of a table's rows, the newest first, over an index whose columns are a filter's (if any)
 * then a time, then (as every non-unique index entry) the row's id. The cursor's position is the
 * last item's [time, id]: the next page starts just below it, so rows tied in time are listed by
 * id, highest first, each once.
 */
import { z } from 'zod';
import type { TableReader } from '../storage/reducer.js';
import type { Row, Value } from '../storage/schema.js';
import { decodeCursorAs, nextCursorField } from './cursor.js';
import { collectPage } from './result-page.js';
import { int } from './wire-schema.js';

export interface NewestFirstQuery {
  /** A non-unique index on [...equal columns, time column]. */
  readonly index: string;
  /** Values of the index's leading columns the rows must hold (the filter); [] for every row. */
  readonly equal: readonly Value[];
  /** The cursor's scope (cursorScope): binds it to the tenant, the tool and the filter. */
  readonly scope: string;
  readonly cursor: string | undefined;
  readonly limit: number | undefined;
}

const position = z.tuple([int(), z.string()]);

export function newestFirstPage<T>(table: TableReader, query: NewestFirstQuery, itemOf: (row: Row) => T, positionOf: (item: T) => [number, string]): { items: T[]; next_cursor?: string } {
  const below = query.cursor === undefined ? undefined : decodeCursorAs(query.scope, query.cursor, position);
  const within = below !== undefined ? { range: { from: query.equal, to: [...query.equal, ...below] } } : query.equal.length > 0 ? { prefix: query.equal } : {};
  const rows = table.scan({ index: query.index, reverse: true, ...within });
  const page = collectPage((function* () { for (const r of rows) yield itemOf(r); })(), query.limit);
  return { items: page.items, ...nextCursorField(query.scope, page, positionOf) };
}
