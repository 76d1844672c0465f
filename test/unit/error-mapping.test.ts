/**
 * errorBodyOf is the one classifier of MCP and WebSocket answers: stable codes pass through, a
 * failed store is `unavailable` (retry once it reopens), anything else is `internal` with no detail.
 */
import { expect, test } from 'vitest';
import { z } from 'zod';
import { errorMessage } from '../../server/ws/protocol.js';
import { errorBodyOf } from '../../server/mcp/error-mapping.js';
import { MemoryError, StoreFailed } from '../../storage/errors.js';

test('a failed store is unavailable, with its reason and a hint, on MCP and on the WebSocket', () => {
  const failed = new StoreFailed('fdatasync failed: EIO', 'fdatasync_failed');
  const { body, isInternal } = errorBodyOf(failed);
  expect(isInternal).toBe(false);
  expect(body).toMatchObject({ code: 'unavailable', message: expect.stringContaining('fdatasync failed: EIO'), hint: expect.stringContaining('retry') });
  expect(errorMessage(failed, ['q1'])).toEqual({ type: 'error', ...body, ids: ['q1'] });
});

test('a store whose files were deleted under it does not promise that it reopens with what it acknowledged', () => {
  const failed = new StoreFailed("the store's files were deleted while it was open (/d/log): nothing more is acknowledged; what it held is gone unless restored from a backup", 'files_deleted');
  const { body } = errorBodyOf(failed);
  expect(body.code).toBe('unavailable');
  expect(body.hint).not.toContain('reopens with exactly what was acknowledged');
  expect(body.hint).toContain('restores it from a backup');
});

test('a MemoryError keeps its code and hint; zod is invalid_argument; anything else is internal without its message', () => {
  expect(errorBodyOf(new MemoryError('busy', 'too many', 'wait')).body).toEqual({ code: 'busy', message: 'too many', hint: 'wait' });
  const zodError = z.object({ n: z.number() }).safeParse({ n: 'x' }).error;
  expect(errorBodyOf(zodError).body).toMatchObject({ code: 'invalid_argument', message: expect.stringContaining('n:') });
  const secret = errorBodyOf(new Error('secret path /etc/x'));
  expect(secret.isInternal).toBe(true);
  expect(secret.body.code).toBe('internal');
  expect(secret.body.message).not.toContain('secret');
  expect(errorMessage(new Error('secret')).code).toBe('internal');
});
