/**
 * What an embedded database that did not start says. PGlite's file system fails with an
 * Emscripten `ErrnoError` ({name, errno}: a WASI errno, no message), which read as a message was
 * "[object Object]": the operator learnt neither that the disk was full nor what to do.
 */

/** WASI errno values (what PGlite's file system reports) an operator can act on. */
const wasiErrors: Readonly<Record<number, { code: string; text: string; todo: string }>> = {
  2: { code: 'EACCES', text: 'permission denied', todo: 'let the server\'s user read and write the data directory' },
  19: { code: 'EDQUOT', text: 'disk quota exceeded', todo: 'raise the quota or free space on the data directory\'s filesystem' },
  29: { code: 'EIO', text: 'input/output error', todo: 'check the disk under the data directory' },
  51: { code: 'ENOSPC', text: 'no space left on the device', todo: 'free space on the data directory\'s filesystem' },
  54: { code: 'ENOTDIR', text: 'a file stands where a directory belongs', todo: 'move the file away' },
  63: { code: 'EPERM', text: 'operation not permitted', todo: 'let the server\'s user read and write the data directory' },
  69: { code: 'EROFS', text: 'read-only file system', todo: 'mount the data directory read-write' },
};

/** The text of a start failure of the embedded database at `dataDir`, naming the cause and what to do. */
export function embeddedStartFailureText(error: unknown, dataDir: string): string {
  if (error instanceof Error && error.message) return error.message;
  const errno = (error as { errno?: unknown } | null)?.errno;
  if (typeof errno === 'number') {
    const known = wasiErrors[errno];
    if (known) return `${known.code} (${known.text}) in ${dataDir}: ${known.todo}, then start again`;
    return `file system error (WASI errno ${errno}) in ${dataDir}`;
  }
  return String(error);
}
