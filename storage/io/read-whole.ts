/**
 * Reading a whole file that is small by contract (a manifest, a checkpoint, a spool): its size
 * is checked against a named limit before any byte is read, so a replaced or wrong file is
 * refused, never loaded.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import type { FileHandleLike, FileLayer } from './file-layer.js';
import { assertRegularFile, FileTooLarge } from './file-refused.js';

/** Reads (and a backup's copies, and a file's hash) move through memory in pieces of this size, so a large file never sits in memory whole. */
export const readPieceBytes = 4 * 1024 * 1024;

/**
 * The whole of a small regular file, read on the calling thread (what is read before anything
 * else runs, or by a synchronous status): FileTooLarge over `bytesMax`, NotARegularFile for
 * anything else. Opened non-blocking, so a FIFO named by mistake is refused rather than waited
 * on forever (its open and its read would block with no writer).
 */
export function readSmallFileSync(file: string, bytesMax: number, limitName: string): Buffer {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = fstatSync(fd);
    assertRegularFile(file, stats);
    if (stats.size > bytesMax) throw new FileTooLarge(file, stats.size, bytesMax, limitName);
    const bytes = readFileSync(fd);
    // The file grew between fstat and read (another writer): the limit still holds.
    if (bytes.length > bytesMax) throw new FileTooLarge(file, bytes.length, bytesMax, limitName);
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/** Read exactly `bytes` from `handle` (from position 0) into one buffer; a shorter file is an error. */
export async function readExactly(handle: FileHandleLike, bytes: number, what: string): Promise<Buffer> {
  const buf = await readUpTo(handle, bytes);
  if (buf.length < bytes) throw new Error(`${what}: file ended at ${buf.length} bytes, ${bytes} expected`);
  return buf;
}

/** The first `bytes` of `handle` (from position 0), or fewer when the file ends before them. */
export async function readUpTo(handle: FileHandleLike, bytes: number): Promise<Buffer> {
  const buf = Buffer.alloc(bytes);
  let done = 0;
  while (done < bytes) {
    const n = await handle.read(buf, done, Math.min(readPieceBytes, bytes - done), done);
    if (n === 0) return buf.subarray(0, done);
    done += n;
  }
  return buf;
}

/** The whole file, or FileTooLarge (named `limitName`) when it holds more than `bytesMax` bytes. */
export async function readBoundedFile(fl: FileLayer, file: string, bytesMax: number, limitName: string): Promise<Buffer> {
  const handle = await fl.open(file, 'r');
  try {
    const bytes = await handle.size();
    if (bytes > bytesMax) throw new FileTooLarge(file, bytes, bytesMax, limitName);
    return await readExactly(handle, bytes, file);
  } finally {
    await handle.close();
  }
}
