/**
 * tools/list and resources/templates/list answer in one page and never give a nextCursor, so
 * any cursor sent to them is not one of this server's: refused as invalid params (-32602),
 * as the paged resources/list refuses a cursor it cannot read, instead of answering the whole
 * list again as though the cursor had been read (a client paging on would loop, or trust it).
 */
import { MemoryError } from '../../storage/errors.js';

/** Characters of a refused cursor quoted back in the message. */
const cursorCharsShownMax = 64;

export function refuseCursorOfSinglePageList(method: 'tools/list' | 'resources/templates/list', cursor: unknown): void {
  if (cursor === undefined) return;
  const text = String(cursor);
  const shown = text.length > cursorCharsShownMax ? `${text.slice(0, cursorCharsShownMax)}...` : text;
  throw new MemoryError(
    'invalid_argument',
    `cursor "${shown}" is not one this server gave: ${method} answers in one page, without a nextCursor`,
    `call ${method} without a cursor`,
  );
}
