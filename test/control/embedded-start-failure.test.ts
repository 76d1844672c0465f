/**
 * An embedded database that cannot start on a full disk: PGlite's file system fails with an
 * Emscripten ErrnoError ({name: 'ErrnoError', errno: 51}, no message, as seen on a full 30 MB
 * tmpfs), and the server said "the embedded database did not start: [object Object]".
 */
import { expect, test } from 'vitest';
import { embeddedStartFailureText } from '../../storage/control/embedded-start-failure.js';

class ErrnoError {
  readonly name = 'ErrnoError';
  constructor(readonly errno: number) {}
}

test('a file-system errno names the cause, the directory and what to do', () => {
  expect(embeddedStartFailureText(new ErrnoError(51), '/data/control-pg'))
    .toBe('ENOSPC (no space left on the device) in /data/control-pg: free space on the data directory\'s filesystem, then start again');
  expect(embeddedStartFailureText(new ErrnoError(69), '/data/control-pg')).toMatch(/^EROFS .*mount the data directory read-write/);
  expect(embeddedStartFailureText(new ErrnoError(1234), '/d')).toBe('file system error (WASI errno 1234) in /d');
});

test('an Error keeps its message; anything else is shown as it is', () => {
  expect(embeddedStartFailureText(new Error('PGlite failed to initialize properly'), '/d')).toBe('PGlite failed to initialize properly');
  expect(embeddedStartFailureText('boom', '/d')).toBe('boom');
});
